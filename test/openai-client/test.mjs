// The official `openai` client, unmodified, against an EMC coordinator's OpenAI-compatible API.
// Usage: OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=KEY EMC_MODEL=NAME node test.mjs
// Prints one JSON line with what it saw; exits non-zero on the first failed check.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.OPENAI_BASE_URL;
const model = process.env.EMC_MODEL;
assert.ok(baseURL && model && process.env.OPENAI_API_KEY, 'set OPENAI_BASE_URL, OPENAI_API_KEY and EMC_MODEL');
// The key comes from OPENAI_API_KEY, as the client reads it by default; it is sent as Authorization: Bearer.
const client = new OpenAI({ baseURL, maxRetries: 0, timeout: 120_000 });

// The model is listed.
const models = await client.models.list();
const ids = models.data.map((m) => m.id);
assert.ok(ids.includes(model), `models: ${ids.join(', ')}`);

// A streamed chat completion: chunks with text arrive, the last one has a finish reason, usage comes, and the stream ends.
const messages = [{ role: 'user', content: 'Tell me a story.' }];
const stream = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 48,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let chunks = 0;
let finish = null;
let usage = null;
let role = null;
for await (const chunk of stream) {
  assert.equal(chunk.object, 'chat.completion.chunk');
  assert.equal(chunk.model, model);
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  role ??= choice.delta.role ?? null;
  if (choice.delta.content) {
    text += choice.delta.content;
    chunks++;
  }
  if (choice.finish_reason) finish = choice.finish_reason;
}
assert.equal(role, 'assistant');
assert.ok(chunks >= 2, `only ${chunks} chunks with text`);
assert.ok(finish === 'stop' || finish === 'length', `finish_reason ${finish}`);
assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, `usage ${JSON.stringify(usage)}`);
assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);

// The same request unstreamed gives the same text (greedy).
const whole = await client.chat.completions.create({ model, messages, max_tokens: 48, temperature: 0 });
assert.equal(whole.choices[0].message.content, text);
assert.equal(whole.usage.completion_tokens, usage.completion_tokens);

// A plain completion.
const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
assert.equal(typeof completion.choices[0].text, 'string');

// Errors come back as the client's typed errors.
await assert.rejects(
  client.chat.completions.create({ model: 'no-such-model', messages }),
  (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
);
await assert.rejects(
  client.chat.completions.create({ model, messages, n: 2 }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === 'n',
);

// A wrong key, or none, is refused with the client's authentication error (401), and nothing is answered.
const stranger = new OpenAI({ baseURL, apiKey: 'emc_000000000000_not-a-key', maxRetries: 0, timeout: 30_000 });
await assert.rejects(stranger.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
await assert.rejects(
  stranger.chat.completions.create({ model, messages, max_tokens: 4 }),
  (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && /not valid|malformed/.test(e.message),
);

console.log(JSON.stringify({ ok: true, chunks, finish, usage, text }));
