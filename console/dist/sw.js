// 点单 console: a service worker for streamed downloads only (审计导出). It caches nothing and
// controls no page: its scope is /console/__download/. The page hands it a job (the export URL
// and the bearer token) over a MessageChannel, then opens /console/__download/<id> in a hidden
// frame; the worker fetches the export with the Authorization header and passes the response
// body straight to the browser's download manager — no row is held in memory on the way.
const jobs = new Map()

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()))

self.addEventListener('message', (e) => {
  const d = e.data || {}
  const port = e.ports && e.ports[0]
  if (d.type !== 'download' || !port || !d.id) return
  const now = Date.now()
  for (const [id, j] of jobs) if (now - j.at > 60000) jobs.delete(id)
  jobs.set(d.id, { url: d.url, token: d.token, name: d.name, port, at: now })
  port.postMessage({ type: 'registered' })
})

self.addEventListener('fetch', (e) => {
  const u = new URL(e.request.url)
  const m = /\/__download\/([0-9a-zA-Z-]+)$/.exec(u.pathname)
  if (u.origin !== self.location.origin || !m) return
  const job = jobs.get(m[1])
  jobs.delete(m[1])
  e.respondWith(run(job))
})

async function run(job) {
  if (!job) return new Response('下载链接已失效，请回到页面重新导出。', { status: 410, headers: { 'Content-Type': 'text/plain; charset=utf-8' } })
  let r
  try {
    r = await fetch(job.url, { headers: { Authorization: 'Bearer ' + job.token, Accept: '*/*' }, cache: 'no-store', credentials: 'omit' })
  } catch {
    job.port.postMessage({ type: 'failed', status: 0 })
    return new Response(null, { status: 204 })
  }
  if (!r.ok || !r.body) {
    let problem = null
    try {
      problem = await r.json()
    } catch {
      /* not a problem document */
    }
    job.port.postMessage({ type: 'failed', status: r.status, problem })
    return new Response(null, { status: 204 })
  }
  job.port.postMessage({ type: 'started' })
  const h = new Headers({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' })
  h.set('Content-Type', r.headers.get('Content-Type') || 'application/octet-stream')
  h.set('Content-Disposition', r.headers.get('Content-Disposition') || `attachment; filename="${job.name}"`)
  return new Response(r.body, { headers: h })
}
