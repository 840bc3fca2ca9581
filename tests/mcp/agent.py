"""An agent's side of aiocr's MCP endpoint, through the official Python SDK (PyPI `mcp`,
pinned in tests/mcp/requirements.txt), unmodified: connects over Streamable HTTP with the
API key as a bearer credential, lists the tools, calls the ones it is given, and prints one
JSON object: the negotiated version, the tools' names and schemas, each call's result.

usage: agent.py URL KEY CALLS.json   (CALLS.json: [{"tool": name, "arguments": {...}}, ...])
       agent.py URL KEY --refused    (connecting must fail: prints what the SDK raised)
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def http_client(key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx2.AsyncClient(headers=headers, timeout=60.0)


async def run(url, key, calls):
    transport = streamable_http_client(url, http_client=http_client(key))
    async with Client(transport) as client:
        await client.send_ping()
        listed = await client.list_tools()
        results = []
        for call in calls:
            result = await client.call_tool(call["tool"], call["arguments"])
            results.append(
                {
                    "isError": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": [item.text for item in result.content if item.type == "text"],
                }
            )
        return {
            "protocol": client.protocol_version,
            "server": client.server_info.name if client.server_info else None,
            "tools": [
                {"name": tool.name, "input": tool.input_schema, "output": tool.output_schema}
                for tool in listed.tools
            ],
            "results": results,
        }


async def refused(url, key):
    try:
        async with Client(streamable_http_client(url, http_client=http_client(key))) as client:
            await client.list_tools()
    except BaseException as error:  # the SDK raises an exception group from its task group
        return {"refused": True, "error": repr(error)}
    return {"refused": False}


def main():
    url, key, what = sys.argv[1], sys.argv[2], sys.argv[3]
    if what == "--refused":
        answer = asyncio.run(refused(url, key))
    else:
        with open(what) as file:
            calls = json.load(file)
        answer = asyncio.run(run(url, key, calls))
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
