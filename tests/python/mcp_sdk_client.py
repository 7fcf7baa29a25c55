"""Drives Onramp's MCP server with the official MCP Python SDK (PyPI `mcp`) as its client.

Lists the tools, then calls every one of them through the seed's workflow, so that the SDK
reads (and validates against each tool's declared output schema) every kind of result Onramp
returns, refusals included. Prints one line per call; exits non-zero on the first failure.

    python3 mcp_sdk_client.py stdio ONRAMP_BINARY ARG...      # `onramp ... mcp`
    python3 mcp_sdk_client.py http URL TOKEN                   # `onramp serve`'s /mcp
"""

import asyncio
import sys
from contextlib import asynccontextmanager

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CUSTOMER = "sdk_corp"


@asynccontextmanager
async def connect(argv):
    if argv[0] == "stdio":
        params = StdioServerParameters(command=argv[1], args=argv[2:])
        async with stdio_client(params) as (read, write):
            yield read, write
    elif argv[0] == "http":
        url, token = argv[1], argv[2]
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams[0], streams[1]
    else:
        raise SystemExit(f"unknown transport {argv[0]!r}")


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


async def call(session, name, arguments, expect_error=False):
    result = await session.call_tool(name, arguments)
    if bool(result.is_error) != expect_error:
        fail(f"{name}: isError={result.is_error} {result.structured_content or result.content}")
    structured = result.structured_content
    if not isinstance(structured, dict):
        fail(f"{name}: structuredContent is not an object: {structured!r}")
    print(f"ok {name}{' (refused: ' + str(structured.get('code')) + ')' if expect_error else ''}", flush=True)
    return structured


async def main(argv):
    async with connect(argv) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            for name, tool in tools.items():
                if not tool.output_schema or tool.output_schema.get("type") != "object":
                    fail(f"{name}: no object output schema")
            missing = await call(session, "get_customer", {"customer_id": CUSTOMER})
            if missing != {"customer": None}:
                fail(f"get_customer of nobody: {missing}")
            onboarded = await call(session, "onboard_customer", {
                "customer_id": CUSTOMER,
                "customer_name": "SDK Corp",
                "industry": "ecommerce",
                "attributes": {"google_ads_customer_ids": ["123-456-7890"]},
            })
            if not onboarded["onboarding"]["is_success"]:
                fail(f"onboarding: {onboarded}")
            found = await call(session, "get_customer", {"customer_id": CUSTOMER})
            if found["customer"]["customer_id"] != CUSTOMER:
                fail(f"get_customer: {found}")
            listed = await call(session, "list_customers_by_industry", {"industry": "ecommerce"})
            if CUSTOMER not in [c["customer_id"] for c in listed["items"]]:
                fail(f"list_customers_by_industry: {listed}")
            await call(session, "list_customers", {"status": "active"})
            await call(session, "get_onboarding_status", {"customer_id": CUSTOMER})
            rows = await call(session, "query_dataset", {"customer_id": CUSTOMER, "sql": "SELECT 1 AS test"})
            if rows["rows"] != [[1]]:
                fail(f"query_dataset: {rows}")
            await call(session, "update_customer", {"customer_id": CUSTOMER, "tags": ["sdk"]})
            await call(session, "store_credential", {
                "customer_id": CUSTOMER, "type": "meta_access_token", "value": "EAAGsdk12345678",
            })
            await call(session, "list_credentials", {"customer_id": CUSTOMER})
            await call(session, "complete_checklist_item", {"customer_id": CUSTOMER, "item": "schema_checked"})
            await call(session, "retry_onboarding", {"customer_id": CUSTOMER}, expect_error=True)
            await call(session, "query_dataset", {"customer_id": CUSTOMER, "sql": "SELECT pg_read_file('/etc/passwd')"}, expect_error=True)
            await call(session, "offboard_customer", {"customer_id": CUSTOMER, "delete_data": True, "confirm": CUSTOMER})
            print("all tools read", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
