"""Render the production summary prompt the way an app would, and show what was sent.

Run from the repository root: python examples/render_prompt.py
"""

from pathlib import Path

from promptkit import TemplateStore

store = TemplateStore(Path(__file__).parent.parent / "templates")
template = store.get("summarize@production")

article = (
    "The national weather office said on Friday that this summer was the hottest since "
    "records began in 1880, with average temperatures 1.4 degrees above normal."
)
messages = template.render(article=article)  # -> ready for client.chat.completions.create
print(f"{template.ref} sha256={template.sha256[:12]} params={template.params}")
for message in messages:
    print(f"[{message['role']}] {message['content'][-120:]}")
