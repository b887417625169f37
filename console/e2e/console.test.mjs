// Browser test of the web console against a real `diandan up --demo`.
//
//   DIANDAN_BIN=target/debug/diandan SCREENSHOTS=target/screenshots node console/e2e/console.test.mjs
//
// Starts its own server (temp data dir, 127.0.0.1:0 ports), waits for the demo to be seeded,
// drives headless Chromium (/usr/bin/chromium, via playwright-core) and saves numbered
// screenshots of every page. The console is taken from the binary at /console/; when the
// binary doesn't serve it (older build), or with CONSOLE_FROM=dist, console/dist is served
// by a small proxy here.
import { test, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname, extname, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import http from 'node:http'
import { chromium } from 'playwright-core'

const HERE = dirname(fileURLToPath(import.meta.url))
const DIST = resolve(HERE, '..', 'dist')
const BIN = resolve(process.env.DIANDAN_BIN || 'target/debug/diandan')
const SHOTS = resolve(process.env.SCREENSHOTS || 'target/screenshots')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const HISTORY = process.env.DIANDAN_DEMO_HISTORY || '300'
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i

let server = null
let dataDir = ''
let proxy = null
let apiBase = '' // http://127.0.0.1:PORT
let uiBase = '' // http://127.0.0.1:PORT/console/
let browser = null
let shotNo = 0

// ---------- helpers ----------

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

async function api(token, method, path, body, { expectOk = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (token) headers.Authorization = 'Bearer ' + token
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json'
    headers['Idempotency-Key'] = crypto.randomUUID()
  }
  const r = await fetch(apiBase + '/api/v1' + path, { method, headers, body: method === 'GET' ? undefined : JSON.stringify(body || {}) })
  const text = await r.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  if (expectOk && !r.ok) throw new Error(`${method} ${path} → ${r.status}: ${text.slice(0, 300)}`)
  return { status: r.status, body: json, headers: r.headers }
}

async function staffToken(username, password) {
  const r = await api(null, 'POST', '/auth/login', { username, password })
  return r.body.access_token
}

async function devToken(role, userId, orgNode = '') {
  const r = await api(null, 'POST', '/dev/login', { role, user_id: userId, org_node: orgNode })
  return r.body.token
}

async function placeOrder(station, description, category = 'repair') {
  const tok = await devToken('resident', 'r-e2e-' + Math.floor(Math.random() * 1e6))
  const r = await api(tok, 'POST', '/orders', {
    station_id: station,
    category,
    description,
    location: { lat: 29.8702, lng: 114.2849, address: '车站路 12 号（测试）' },
    contact_phone: '13812345678',
  })
  return r.body.order_id
}

async function shot(page, name) {
  shotNo += 1
  await sleep(350) // let transitions (drawers, dialogs, tags) settle
  const file = join(SHOTS, `${String(shotNo).padStart(2, '0')}-${name}.png`)
  await page.screenshot({ path: file, fullPage: false })
  return file
}

const openPages = new Set()
async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', acceptDownloads: true })
  const page = await ctx.newPage()
  page.setDefaultTimeout(15000)
  page.on('pageerror', (e) => console.error('[pageerror]', e.message))
  openPages.add(page)
  ctx.on('close', () => openPages.delete(page))
  return page
}

async function uiLogin(page, username, password, landing) {
  await page.goto(uiBase + '#/login')
  await page.locator('input[name=username]').fill(username)
  await page.locator('input[name=password]').fill(password)
  await page.getByRole('button', { name: /登\s*录/ }).click()
  await page.waitForURL(new RegExp('#' + landing))
}

// A minimal CSV parser (RFC 4180: quotes, doubled quotes, CRLF/LF, newlines in quotes).
function parseCsv(text) {
  const rows = []
  let row = []
  let field = ''
  let q = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (q) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"'
          i++
        } else q = false
      } else field += c
    } else if (c === '"') q = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += c
  }
  if (field !== '' || row.length) {
    row.push(field)
    rows.push(row)
  }
  return rows.filter((r) => r.length > 1 || r[0] !== '')
}

// Serve console/dist at /console/ and proxy everything else to the binary (streams SSE).
function startProxy(target) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.woff2': 'font/woff2', '.json': 'application/json' }
  const t = new URL(target)
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x')
    if (u.pathname === '/console' || u.pathname.startsWith('/console/')) {
      let rel = decodeURIComponent(u.pathname.slice('/console/'.length)) || 'index.html'
      let file = normalize(join(DIST, rel))
      if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html')
      res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream' })
      res.end(readFileSync(file))
      return
    }
    const p = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (pr) => {
      res.writeHead(pr.statusCode, pr.headers)
      pr.pipe(res)
    })
    p.on('error', () => {
      res.writeHead(502)
      res.end()
    })
    req.pipe(p)
  })
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv)))
}

// ---------- server lifecycle ----------

before(async () => {
  mkdirSync(SHOTS, { recursive: true })
  assert.ok(existsSync(BIN), `DIANDAN_BIN not found: ${BIN}`)
  dataDir = mkdtempSync(join(tmpdir(), 'diandan-e2e-'))
  server = spawn(BIN, ['up', '--demo', '--data-dir', dataDir, '--grpc-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--rate-limits', 'off'], {
    // The history's end is read from its log line: diandan::history logs at INFO whatever RUST_LOG says.
    env: {
      ...process.env,
      DIANDAN_RATE_LIMITS: 'off',
      DIANDAN_DEMO_HISTORY: HISTORY,
      RUST_LOG: `${process.env.RUST_LOG || 'info,h2=warn,tower=warn,hyper=warn'},diandan::history=info`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  process.on('exit', () => {
    if (server && server.exitCode === null) server.kill('SIGKILL')
  })
  let stderrTail = ''
  // Done once the year of history is replayed: until then finished orders keep arriving, and a
  // search read twice (the CSV, then the API's pages) could differ.
  let historyDone = HISTORY === '0'
  server.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-4000)
    if (/demo history replayed/.test(stderrTail)) historyDone = true
  })
  apiBase = await new Promise((resolveReady, reject) => {
    let buf = ''
    const to = setTimeout(() => reject(new Error('server not ready in 60 s; stderr: ' + stderrTail)), 60000)
    server.stdout.on('data', (d) => {
      buf += d
      const m = /diandan ready .*http=(\S+)/.exec(buf)
      if (m) {
        clearTimeout(to)
        resolveReady('http://' + m[1])
      }
    })
    server.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderrTail}`)))
  })
  // Wait until the demo is seeded and its history replayed.
  const deadline = Date.now() + 300000
  for (;;) {
    try {
      const tok = await staffToken('admin.xianan', 'xianan-demo-2026')
      const s = await api(tok, 'GET', '/nodes/xianan/stats')
      if (s.body.received >= 112 && historyDone) break
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`demo not seeded in 300 s (history replayed: ${historyDone})`)
    await sleep(500)
  }
  const probe = await fetch(apiBase + '/console/')
  const html = probe.ok ? await probe.text() : ''
  // CONSOLE_FROM=dist: test console/dist as built now (served here), not the copy embedded in the binary.
  if (process.env.CONSOLE_FROM !== 'dist' && probe.ok && html.includes('id="app"')) {
    uiBase = apiBase + '/console/'
  } else {
    console.log('# serving console/dist from this test (the binary does not serve /console/, or CONSOLE_FROM=dist)')
    proxy = await startProxy(apiBase)
    uiBase = `http://127.0.0.1:${proxy.address().port}/console/`
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
})

after(async () => {
  if (browser) await browser.close().catch(() => {})
  if (proxy) proxy.close()
  if (server && server.exitCode === null) {
    server.kill('SIGTERM')
    await Promise.race([new Promise((r) => server.once('exit', r)), sleep(5000)])
    if (server.exitCode === null) server.kill('SIGKILL')
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

// On failure, keep a screenshot of every page still open.
afterEach(async (t) => {
  for (const p of openPages) {
    try {
      await p.screenshot({ path: join(SHOTS, `fail-${String(shotNo).padStart(2, '0')}.png`) })
      await p.context().close()
    } catch {
      /* ignore */
    }
  }
  openPages.clear()
})

// ---------- scenarios ----------

test('(a) station head: live board, triage, dispatch from suggestions, timeline', async () => {
  const page = await newPage()
  await page.goto(uiBase + '#/login')
  await page.locator('input[name=username]').waitFor()
  await shot(page, 'login')
  await uiLogin(page, 'deng.xiaohu', 'chezhanlu-demo-2026', '/board')
  await page.locator('.queue-table .el-table__row').first().waitFor()
  await page.getByText('实时', { exact: true }).waitFor()
  await shot(page, 'board')

  // A resident places an order: it must appear without reload.
  const desc = `楼道灯不亮，请帮忙维修（e2e ${Date.now()}）`
  const t0 = Date.now()
  const orderId = await placeOrder('chezhanlu', desc)
  const row = page.locator('.queue-table .el-table__body tr', { hasText: desc })
  await row.waitFor()
  console.log(`# new order on the board after ${Date.now() - t0} ms`)
  await shot(page, 'board-new-order')

  // Triage with the keyboard (select the row, press a), then dispatch from the suggestions drawer (d).
  await row.locator('td').nth(3).click()
  await page.keyboard.press('a')
  await row.locator('.op-dispatch').waitFor()
  await page.keyboard.press('d')
  const drawer = page.locator('.dispatch-drawer')
  const sugg = drawer.locator('.sugg[data-team="zhidui-chezhanlu"]')
  await sugg.waitFor()
  const reason = await sugg.locator('input').inputValue()
  assert.ok(reason.length > 0, 'the suggestion reason is prefilled')
  await shot(page, 'dispatch-drawer')
  await sugg.locator('.do-dispatch').click()
  await drawer.waitFor({ state: 'hidden' })

  // Dispatched, it stays on the board as 待接单 (with its team and 改派) until a volunteer accepts.
  await row.locator('.op-redispatch').waitFor()
  const waiting = await row.innerText()
  assert.ok(waiting.includes('待接单'), 'the dispatched order shows 待接单')
  assert.ok(waiting.includes('车站路社区文明实践支队'), 'the dispatched order names its team')
  assert.ok(waiting.includes('签收接单'), 'its running deadline is 签收接单')
  await page.locator('.status-tabs .tab-dispatched').click()
  await row.waitFor()
  await shot(page, 'board-waiting-accept')

  // The order is now dispatched to the team.
  const head = await staffToken('deng.xiaohu', 'chezhanlu-demo-2026')
  for (let i = 0; i < 50; i++) {
    const o = await api(head, 'GET', `/orders/${orderId}`)
    if (o.body.status === 'dispatched') break
    await sleep(100)
  }
  assert.equal((await api(head, 'GET', `/orders/${orderId}`)).body.assignee_id, 'zhidui-chezhanlu')

  // The volunteer does the work over the API.
  const vol = await devToken('volunteer', 'v-wangsen')
  const here = { lat: 29.8702, lng: 114.2849, address: '车站路 12 号（测试）' }
  await api(vol, 'POST', `/orders/${orderId}/accept`, { team_id: 'zhidui-chezhanlu' })
  const t1 = Date.now()
  await row.waitFor({ state: 'detached' })
  console.log(`# accepted order left the board after ${Date.now() - t1} ms`)
  await api(vol, 'POST', `/orders/${orderId}/check-in`, { location: here })
  await api(vol, 'POST', `/orders/${orderId}/check-out`, { location: here })
  await api(vol, 'POST', `/orders/${orderId}/complete`, { note: '已更换楼道灯泡三个（e2e）' })

  await page.goto(uiBase + '#/orders/' + orderId)
  const tl = page.locator('.timeline')
  await tl.locator('.ev-OrderAccepted').waitFor()
  await tl.locator('.ev-OrderCompleted').waitFor()
  const text = await tl.innerText()
  for (const w of ['点单', '审单通过', '派单', '接单', '签到', '签退', '办结']) assert.ok(text.includes(w), `timeline shows ${w}`)
  assert.ok(text.includes(reason.slice(0, 10)), 'timeline shows the dispatch reason')
  // The deadlines each change stopped and started (its `clocks`) are listed as they happened.
  const clocks = await page.locator('.page-card', { hasText: '时限记录' }).innerText()
  for (const w of ['时限开始', '时限结束', '派单时限']) assert.ok(clocks.includes(w), `deadline record shows ${w}`)
  await shot(page, 'order-detail')
  await page.context().close()
})

test('(b) auditor: search, export CSV equals the API, read-only order page', async () => {
  const page = await newPage()
  await uiLogin(page, 'audit.xianan', 'audit-demo-2026', '/audit')
  // Filter by category 便民维修.
  await page.locator('.search-form .el-form-item', { hasText: '类别' }).locator('.el-select').click()
  await page.locator('.el-select-dropdown__item:visible', { hasText: '便民维修' }).click()
  await page.locator('.do-search').click()
  await page.locator('.audit-table .el-table__row').first().waitFor()
  await shot(page, 'audit')

  const dlPromise = page.waitForEvent('download')
  await page.locator('.export-csv').click()
  const dl = await dlPromise
  assert.match(dl.url(), /\/console\/__download\//, 'the export streams through the download worker (no blob in the page)')
  const file = await dl.path()
  const bytes = readFileSync(file)
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'CSV starts with the UTF-8 BOM')
  const rows = parseCsv(bytes.subarray(3).toString('utf8'))
  const csvIds = rows
    .slice(1)
    .map((r) => r.find((f) => UUID.test(f)))
    .filter(Boolean)

  const tok = await staffToken('audit.xianan', 'audit-demo-2026')
  const apiIds = []
  let after = ''
  for (let i = 0; i < 1000; i++) {
    const q = new URLSearchParams({ category: 'repair', limit: '100' })
    if (after) q.set('after', after)
    const r = await api(tok, 'GET', '/audit/orders?' + q)
    apiIds.push(...r.body.orders.map((o) => o.order_id))
    after = r.body.next_after || ''
    if (!after) break
  }
  assert.ok(apiIds.length > 0, 'the search finds finished orders')
  assert.deepEqual([...csvIds].sort(), [...apiIds].sort(), 'CSV rows are the orders of the search')

  // Read-only order page.
  await page.locator('.audit-table .el-table__row').first().click()
  await page.waitForURL(/#\/orders\//)
  await page.locator('.timeline').waitFor()
  assert.equal(await page.locator('.order-actions').count(), 0, 'no action area for the auditor')
  for (const name of ['审核通过', '驳回', '派单', '同意延期', '取消订单']) {
    assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`)
  }
  await shot(page, 'auditor-order')

  // 查阅记录, and the order's verifiable export, checked offline with the public key alone.
  await page.locator('.trail .reads-table').waitFor()
  await page.locator('.trail').scrollIntoViewIfNeeded()
  await shot(page, 'auditor-order-trail')
  const proofPromise = page.waitForEvent('download')
  await page.locator('.proof-download').click()
  const proof = await proofPromise
  const proofFile = await proof.path()
  const key = (await api(tok, 'GET', '/audit/checkpoint')).body.public_key
  const verified = spawnSync(BIN, ['audit', 'verify-export', proofFile, '--key', key], { encoding: 'utf8' })
  assert.equal(verified.status, 0, verified.stdout + verified.stderr)
  assert.match(verified.stdout, /验证通过/)
  await page.context().close()
})

test('(c) centre admin: dashboard drill-down, command centre, org tabs', async () => {
  const page = await newPage()
  await uiLogin(page, 'admin.xianan', 'xianan-demo-2026', '/board')
  await page.goto(uiBase + '#/dashboard')
  const crumbs = page.locator('.node-crumbs')
  await crumbs.getByText('咸安区新时代文明实践中心').waitFor()
  await page.locator('.child-table .el-table__row').first().waitFor()
  await sleep(800) // charts animate in
  await shot(page, 'dashboard-centre')

  await page.locator('.child-table .el-table__row', { hasText: '永安' }).click()
  await crumbs.locator('.crumb-cur', { hasText: '永安' }).waitFor()
  await page.locator('.child-table .el-table__row', { hasText: '车站路' }).waitFor()
  await sleep(800)
  await shot(page, 'dashboard-institute')

  await page.locator('.child-table .el-table__row', { hasText: '车站路' }).click()
  await crumbs.locator('.crumb-cur', { hasText: '车站路' }).waitFor()
  const trail = await crumbs.innerText()
  assert.match(trail.replace(/\s+/g, ''), /咸安区新时代文明实践中心›永安.*›车站路/)
  await sleep(800)
  await shot(page, 'dashboard-station')
  await crumbs.locator('.crumb-link', { hasText: '咸安区' }).click()
  await crumbs.locator('.crumb-cur', { hasText: '咸安区' }).waitFor()

  await page.goto(uiBase + '#/command')
  await page.locator('.today-received').waitFor()
  await page.waitForFunction(() => document.querySelector('.today-received')?.textContent.trim() !== '—')
  await sleep(1200)
  await shot(page, 'command-centre')

  for (const [tab, sel] of [['nodes', '.org-tree'], ['teams', '.el-table'], ['volunteers', '.vol-table'], ['import', '.uploader']]) {
    await page.goto(uiBase + '#/org?tab=' + tab)
    await page.locator(sel).first().waitFor()
    await sleep(400)
    await shot(page, 'org-' + tab)
  }
  await page.context().close()
})

test('(d) expired session → re-login dialog keeps the input; order outside the subtree → 无权查看', async () => {
  const page = await newPage()
  await uiLogin(page, 'deng.xiaohu', 'chezhanlu-demo-2026', '/board')
  // An expired access token alone is renewed silently with the refresh token (the live queue reconnects).
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('diandan.session'))
    s.access_token = 'expired.' + s.access_token.slice(8)
    sessionStorage.setItem('diandan.session', JSON.stringify(s))
  })
  await page.reload()
  await page.getByText('实时', { exact: true }).waitFor()
  await page.locator('.queue-table .el-table__row').first().waitFor()
  assert.equal(await page.locator('.relogin-dialog').isVisible(), false, 'no re-login dialog')
  const renewed = await page.evaluate(() => JSON.parse(sessionStorage.getItem('diandan.session')).access_token)
  assert.ok(!renewed.startsWith('expired.'), 'the access token was refreshed')

  await page.goto(uiBase + '#/audit')
  await page.locator('.audit-table').waitFor()
  const vol = page.locator('.search-form .el-form-item', { hasText: '志愿者' }).locator('input')
  await vol.fill('v-wangsen')
  // Garble both tokens, then act.
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('diandan.session'))
    s.access_token = 'garbled.' + s.access_token.slice(8)
    s.refresh_token = 'garbled-refresh-token'
    sessionStorage.setItem('diandan.session', JSON.stringify(s))
  })
  await page.locator('.do-search').click()
  const dlg = page.locator('.relogin-dialog')
  await dlg.getByText('登录已过期，请重新登录').waitFor()
  await sleep(500) // dialog fade-in
  await shot(page, 'session-expired')
  await dlg.locator('input[name=relogin-password]').fill('chezhanlu-demo-2026')
  await dlg.getByRole('button', { name: '登录' }).click()
  await dlg.waitFor({ state: 'hidden' })
  assert.equal(await vol.inputValue(), 'v-wangsen', 'what the user typed is kept')
  assert.match(page.url(), /#\/audit/, 'still on the same page')

  const foreign = await placeOrder('meiyuan', '梅园社区的订单（e2e，站长车站路无权查看）')
  await page.goto(uiBase + '#/orders/' + foreign)
  await page.getByText(/无权查看/).first().waitFor()
  await page.getByRole('button', { name: '返回' }).waitFor()
  await shot(page, 'forbidden-order')
  await page.context().close()
})

test('(e) import: per-row errors, nothing imported', async () => {
  const admin = await staffToken('admin.xianan', 'xianan-demo-2026')
  const list = async () => (await api(admin, 'GET', '/volunteers?node_id=xianan&include_inactive=true')).body.volunteers.map((v) => v.id).sort()
  const before = await list()

  const page = await newPage()
  await uiLogin(page, 'admin.xianan', 'xianan-demo-2026', '/board')
  await page.goto(uiBase + '#/org?tab=import')
  await page.locator('.uploader').waitFor()
  const csv =
    '\uFEFF编号,姓名,手机号,服务队,技能\r\n' +
    'v-e2e-good1,测试甲,13800001111,zhidui-chezhanlu,repair\r\n' +
    'v-e2e-bad1,,13800002222,zhidui-chezhanlu,\r\n' +
    'v-e2e-bad2,测试乙,123,no-such-team,\r\n'
  await page.locator('.uploader input[type=file]').setInputFiles({ name: 'volunteers.csv', mimeType: 'text/csv', buffer: Buffer.from(csv, 'utf8') })
  const errs = page.locator('.import-errors')
  await errs.locator('.el-table__row').first().waitFor()
  assert.ok((await errs.locator('.el-table__row').count()) >= 2, 'an error per bad row')
  await shot(page, 'import-errors')
  assert.equal(await page.locator('.confirm-import').count(), 0, 'no 确认导入 while there are errors')
  assert.deepEqual(await list(), before, 'nothing imported')
  await page.context().close()
})

test('(g) volunteer hours and the love supermarket: rankings, a far check-in confirmed, a code handed over', async () => {
  const admin = await staffToken('admin.xianan', 'xianan-demo-2026')
  // The demo's year of history is credited by the ledger behind the scenes, and then its
  // busiest volunteers redeem towels: wait for an uncollected one and read its code as its
  // volunteer sees it in the mini-program.
  let open = null
  for (let i = 0; i < 240 && !open; i++) {
    const top = (await api(admin, 'GET', '/nodes/xianan/rankings?limit=40')).body.entries || []
    for (const e of top) {
      const tok = await devToken('volunteer', e.id)
      const rec = (await api(tok, 'GET', '/volunteers/me/record')).body
      const r = (rec.redemptions || []).find((x) => x.status === 'reserved' && x.code)
      if (r) {
        open = r
        break
      }
    }
    if (!open) await sleep(500)
  }
  assert.ok(open, 'a reserved redemption with its code')
  const pending = (await api(admin, 'GET', '/nodes/xianan/hours/pending')).body.services || []
  assert.ok(pending.length > 0, 'the history has check-ins far from the place')

  const page = await newPage()
  await uiLogin(page, 'admin.xianan', 'xianan-demo-2026', '/board')
  await page.goto(uiBase + '#/ledger')
  const first = page.locator('.ranking-table .el-table__body tr').first()
  await first.waitFor()
  assert.ok((await first.innerText()).includes('小时'), 'hours in the ranking')
  await shot(page, 'ledger-rankings')
  // A volunteer's record from the ranking.
  await first.click()
  await page.locator('.record-drawer .record-services .el-table__body tr').first().waitFor()
  await shot(page, 'ledger-record')
  await page.keyboard.press('Escape')

  // 待确认时长: a far check-in, confirmed.
  await page.locator('.ledger-tabs .el-tabs__item', { hasText: '待确认时长' }).click()
  const rows = page.locator('.pending-table .el-table__body tr')
  await rows.first().waitFor()
  await shot(page, 'ledger-pending')
  // The ledger may still be crediting the demo's history, so the list can gain rows while
  // this runs: follow the confirmed row itself (volunteer, order, distance, time), not the count.
  const confirmed = await rows.first().innerText()
  await rows.first().locator('.do-confirm').click()
  await page.locator('.el-message--success', { hasText: '已确认' }).waitFor()
  for (let i = 0; i < 50 && (await rows.allInnerTexts()).includes(confirmed); i++) await sleep(100)
  assert.ok(!(await rows.allInnerTexts()).includes(confirmed), 'the confirmed one leaves the list')

  // 爱心超市: the shop hands the towel over against the volunteer's code, once.
  await page.locator('.ledger-tabs .el-tabs__item', { hasText: '爱心超市' }).click()
  await page.locator('.shop-table .el-table__body tr', { hasText: '毛巾' }).waitFor()
  await page.locator('.ho-id input').fill(open.redemption_id)
  await page.locator('.ho-code input').fill('00000000' === open.code ? '11111111' : '00000000')
  await page.locator('.do-hand-over').click()
  await page.locator('.el-message--error', { hasText: '兑换码无效' }).waitFor()
  await page.locator('.ho-code input').fill(open.code)
  await page.locator('.do-hand-over').click()
  await page.locator('.el-message--success', { hasText: '核销成功' }).waitFor()
  await shot(page, 'ledger-shop')
  await page.locator('.ho-id input').fill(open.redemption_id)
  await page.locator('.ho-code input').fill(open.code)
  await page.locator('.do-hand-over').click()
  await page.locator('.el-message--error', { hasText: '已使用' }).waitFor()
  await page.context().close()
})

test('(f) open claim and rework: an activity’s seats, a poor review reworked from the detail page', async () => {
  const head = await staffToken('deng.xiaohu', 'chezhanlu-demo-2026')
  const here = { lat: 29.8702, lng: 114.2849, address: '车站路 12 号（测试）' }
  // The station organises an activity for 2; two volunteers claim, serve and check out.
  const act = await api(head, 'POST', '/orders', {
    station_id: 'chezhanlu', category: 'health_environment', description: `周六楼道大扫除（e2e ${Date.now()}）`,
    location: here, contact_phone: '13812345678', workflow: 'open-claim', required_volunteers: 2,
  })
  const activity = act.body.order_id
  await api(head, 'POST', `/orders/${activity}/triage`, { accept: true })
  for (const v of ['v-wangsen', 'v-liuhong']) {
    const tok = await devToken('volunteer', v)
    await api(tok, 'POST', `/orders/${activity}/claim`, { team_id: 'zhidui-chezhanlu' })
    await api(tok, 'POST', `/orders/${activity}/check-in`, { location: here })
    await api(tok, 'POST', `/orders/${activity}/check-out`, { location: here })
  }
  const page = await newPage()
  await uiLogin(page, 'deng.xiaohu', 'chezhanlu-demo-2026', '/board')
  await page.goto(uiBase + '#/orders/' + activity)
  const seats = page.locator('.seat-table .el-table__body tr')
  await seats.nth(1).waitFor()
  assert.equal(await seats.count(), 2, 'both claimants are listed with their own times')
  const head1 = await page.locator('.head').innerText()
  assert.ok(head1.includes('活动招募') && head1.includes('已满员'), 'an activity, full')
  await shot(page, 'activity-seats')
  // The organiser completes it from the page.
  await page.locator('.op-complete').click()
  await page.locator('.reason-box textarea').fill('清理楼道杂物 30 余处（e2e）')
  await page.locator('.reason-box .el-button--primary').click()
  await page.locator('.timeline .ev-OrderCompleted').waitFor()

  // A dispatched order reviewed with two stars: 回访 and 返工 from the detail page.
  const orderId = await placeOrder('chezhanlu', `下水道仍然反味（e2e ${Date.now()}）`)
  const vol = await devToken('volunteer', 'v-liuhong')
  const resident = (await api(head, 'GET', `/orders/${orderId}`)).body.requester_id
  await api(head, 'POST', `/orders/${orderId}/triage`, { accept: true })
  await api(head, 'POST', `/orders/${orderId}/dispatch`, { team_id: 'zhidui-chezhanlu' })
  await api(vol, 'POST', `/orders/${orderId}/accept`, { team_id: 'zhidui-chezhanlu' })
  await api(vol, 'POST', `/orders/${orderId}/check-in`, { location: here })
  await api(vol, 'POST', `/orders/${orderId}/check-out`, { location: here })
  await api(vol, 'POST', `/orders/${orderId}/complete`, { note: '已疏通（e2e）' })
  const res = await devToken('resident', resident)
  await api(res, 'POST', `/orders/${orderId}/review`, { rating: 2, comment: '还是有味道' })
  await page.goto(uiBase + '#/orders/' + orderId)
  await page.locator('.op-rework').waitFor()
  await page.locator('.op-follow-up').click()
  await page.locator('.reason-box textarea').fill('电话回访：异味仍在，安排返工（e2e）')
  await page.locator('.reason-box .el-button--primary').click()
  await page.locator('.timeline .ev-FollowUpRecorded').waitFor()
  await page.locator('.op-rework').click()
  const drawer = page.locator('.dispatch-drawer:visible')
  const sugg = drawer.locator('.sugg[data-team="zhidui-chezhanlu"]')
  await sugg.waitFor()
  await sugg.locator('input').fill('异味仍在，请重新检查管道')
  await shot(page, 'rework-drawer')
  await sugg.locator('.do-dispatch').click()
  await page.locator('.timeline .ev-OrderReworked').waitFor()
  const status = await page.locator('.status-tag').innerText()
  assert.equal(status.trim(), '待接单', 'back with a team')
  await shot(page, 'order-reworked')
  await page.context().close()
})
