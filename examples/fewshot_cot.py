"""Few-shot selection and chain-of-thought from Python, offline.

Picks worked examples for a new problem from the shipped pool, builds a prompt with a
chain-of-thought trigger, and reads answers back out of (made-up) model outputs with a
majority vote, as self-consistency does.

Run from the repository root: python examples/fewshot_cot.py
"""

from pathlib import Path

from promptkit import TemplateStore, chain_of_thought, few_shot, load_pool, majority_vote

ROOT = Path(__file__).parent.parent
question = {"question": "A cyclist rides 18 km per hour for 3 hours. How far does she ride?"}

pool = load_pool(ROOT / "evals" / "data" / "math_pool.jsonl")
for select in ("first", "similar", "mmr"):
    chosen = few_shot(pool, k=2, select=select, fields=["question"])(question)
    print(f"{select:8} -> {[example['id'] for example in chosen]}")

examples = few_shot(pool, k=2, select="similar", fields=["question"])(question)
template = TemplateStore(ROOT / "templates").get("math@1")
cot = chain_of_thought("self-consistency", samples=3, extract={"method": "last-number"})
prompt = cot.apply(template.render_text(question, examples=examples, rationales=True))
print(prompt.splitlines()[-2:])

samples = ["18 × 3 = 54, so 54 km.", "She rides 18 + 18 + 18 = 54 km.", "Answer: 56"]
vote = majority_vote([cot.extract(text) for text in samples])
print(f"answer {vote.answer}, votes {vote.votes}, agreement {vote.agreement:.2f}")
