// A list page from a hostile upstream, crafted so that an object no one here owns (as another
// user's would be) slips through the per-user filter (src/relay/object-access.ts): a key given
// twice, a `data` that is not a list, a page inside the page, a byte order mark.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type HostileFixture, call, startHostile } from './helpers/hostile-upstream-fixture.js';
import { head } from './helpers/raw-upstream.js';

const FOREIGN = 'file-abcdefghijklmnopqrstuvwx';
let f: HostileFixture;

beforeAll(async () => {
  f = await startHostile();
});
afterAll(async () => {
  await f.close();
});
beforeEach(async () => {
  await f.enableKey();
});

function serve(body: string, type = 'application/json'): void {
  f.upstream.answer((socket) => socket.end(head('200 OK', [['content-type', type], ['content-length', Buffer.byteLength(body)]]) + body));
}

describe('a list page the filter must not be fooled by', () => {
  it.each([
    ['a first `data` holding the foreign file, a second one empty', `{"object":"list","data":[{"id":"${FOREIGN}","object":"file"}],"data":[],"has_more":false}`, { object: 'list', data: [], has_more: false }],
    ['an item that gives its id twice, the foreign one first', `{"object":"list","data":[{"id":"${FOREIGN}","object":"file","id":"plain-item"}],"has_more":false}`, { object: 'list', data: [{ id: 'plain-item', object: 'file' }], has_more: false }],
  ])('%s: goes out as the gateway read and filtered it, the foreign id nowhere', async (_name, body, expected) => {
    serve(body);
    const answer = await call(f, '/files');
    expect(answer.status).toBe(200);
    expect(answer.text).not.toContain(FOREIGN);
    expect(answer.json).toMatchObject(expected);
  });

  it.each([
    ['`data` an object', `{"object":"list","data":{"id":"${FOREIGN}","object":"file"}}`],
    ['a page inside the page', `{"object":"list","data":{"object":"list","data":[{"id":"${FOREIGN}","object":"file"}]}}`],
    ['`data` a string', `{"object":"list","data":"${FOREIGN}"}`],
  ])('%s: 502 upstream_invalid_response, nothing of it passed on', async (_name, body) => {
    serve(body);
    const answer = await call(f, '/files');
    expect(answer.status).toBe(502);
    expect(answer.json.error).toMatchObject({ type: 'server_error', code: 'upstream_invalid_response' });
    expect(answer.text).not.toContain(FOREIGN);
  });

  it('with a byte order mark, or a charset in its content type: never the foreign file', async () => {
    serve(`\uFEFF{"object":"list","data":[{"id":"${FOREIGN}","object":"file"}]}`);
    const bom = await call(f, '/files');
    expect(bom.text).not.toContain(FOREIGN);
    expect(bom.json.error).toMatchObject({ code: 'upstream_invalid_response' });
    serve(`{"object":"list","data":[{"id":"${FOREIGN}","object":"file"}]}`, 'application/json; charset=utf-8');
    const charset = await call(f, '/files');
    expect(charset.status).toBe(200);
    expect(charset.text).not.toContain(FOREIGN);
  });

  it('an unchanged page with no key given twice still goes out byte for byte', async () => {
    const body = '{\n  "object": "list",\n  "data": [],\n  "has_more": false\n}';
    serve(body);
    const answer = await call(f, '/files');
    expect(answer.status).toBe(200);
    expect(answer.text).toBe(body);
  });
});
