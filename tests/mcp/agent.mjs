// An agent's side of aiocr's MCP endpoint, through the official TypeScript SDK (npm
// @modelcontextprotocol/sdk, pinned in tests/mcp/package-lock.json), unmodified: connects
// over Streamable HTTP with the API key as a bearer credential, lists the tools, calls the
// ones it is given, ends the session (DELETE) and prints one JSON object.
//
// usage: node agent.mjs URL KEY CALLS.json
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, key, callsFile] = process.argv.slice(2);
const calls = JSON.parse(readFileSync(callsFile, 'utf8'));
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: 'aiocr-test-agent', version: '1.0.0' });
await client.connect(transport);
await client.ping();
const listed = await client.listTools();
const results = [];
for (const call of calls) {
  const result = await client.callTool({ name: call.tool, arguments: call.arguments });
  results.push({
    isError: Boolean(result.isError),
    structured: result.structuredContent ?? null,
    text: result.content.filter((item) => item.type === 'text').map((item) => item.text),
  });
}
const session = transport.sessionId;
const protocol = transport.protocolVersion;
await transport.terminateSession();
await client.close();
console.log(JSON.stringify({
  protocol,
  session,
  server: client.getServerVersion()?.name ?? null,
  tools: listed.tools.map((tool) => ({ name: tool.name, input: tool.inputSchema, output: tool.outputSchema })),
  results,
}));
