"""The baseline: a bare AsyncOpenAI loop sending N chat requests at a fixed concurrency.

python bench/bare_loop.py BASE_URL N CONCURRENCY
"""

import asyncio
import sys

from openai import AsyncOpenAI


async def main(base_url: str, n: int, concurrency: int) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(i: int) -> None:
        nonlocal ok
        async with gate:
            messages = [{"role": "user", "content": f"Summarize: benchmark case {i} text."}]
            response = await client.chat.completions.create(model="m", messages=messages,
                                                            temperature=0)
            ok += bool(response.choices[0].message.content)

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()
    print(f"bare loop: {ok}/{n} ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
