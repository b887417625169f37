// A tiny fetch wrapper: JSON in/out, bearer token, RFC 9457 problems,
// one refresh on 401, then the re-login dialog, then a retry of the request.
import { ElMessage } from 'element-plus'
import { auth, getSession, setSession } from './session'

export const BASE = '/api/v1'

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `请求失败（${status}）`)
    this.status = status
    this.problem = problem || {}
  }
}

export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  // Fallback for non-secure contexts (plain http on a LAN address).
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[6] = (b[6] & 0x0f) | 0x40
  b[8] = (b[8] & 0x3f) | 0x80
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

let refreshing = null
// Refresh the session once; concurrent callers share the same attempt.
export function refreshSession() {
  if (refreshing) return refreshing
  refreshing = (async () => {
    const s = getSession()
    if (!s || !s.refresh_token) return false
    try {
      const r = await fetch(BASE + '/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: s.refresh_token }),
      })
      if (!r.ok) return false
      const next = await r.json()
      setSession({ ...next, username: s.username })
      return true
    } catch {
      return false
    }
  })()
  refreshing.finally(() => setTimeout(() => (refreshing = null), 0))
  return refreshing
}

let reloginWaiters = []
// Show the re-login dialog and wait until the user signed in again.
export function waitForRelogin() {
  auth.reloginVisible = true
  return new Promise((resolve) => reloginWaiters.push(resolve))
}
export function reloginDone() {
  auth.reloginVisible = false
  const w = reloginWaiters
  reloginWaiters = []
  w.forEach((f) => f())
}

// Ensure we have a usable token after a 401: refresh, or ask the user to sign in again.
export async function recoverSession() {
  if (await refreshSession()) return
  await waitForRelogin()
}

async function parseProblem(r) {
  const ct = r.headers.get('content-type') || ''
  try {
    if (ct.includes('json')) return await r.json()
    const t = await r.text()
    return { title: '请求失败', status: r.status, detail: t || `请求失败（${r.status}）` }
  } catch {
    return { title: '请求失败', status: r.status, detail: `请求失败（${r.status}）` }
  }
}

/**
 * request(method, path, { body, query, raw, contentType, silent, headers, idempotent })
 * - body: object (JSON) or Blob/File (sent raw with contentType)
 * - raw: return the Response instead of parsed JSON
 * - silent: don't show ElMessage on error
 */
export async function request(method, path, opts = {}) {
  let url = path.startsWith('http') || path.startsWith('/api') ? path : BASE + path
  if (opts.query) {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(opts.query)) {
      if (v !== undefined && v !== null && v !== '') q.append(k, String(v))
    }
    const qs = q.toString()
    if (qs) url += (url.includes('?') ? '&' : '?') + qs
  }
  const idemKey = method !== 'GET' ? uuid() : null // one key per user action, kept on retry
  let recovered = false
  for (;;) {
    const s = getSession()
    const headers = { Accept: 'application/json, application/problem+json', ...(opts.headers || {}) }
    if (s && s.access_token) headers.Authorization = 'Bearer ' + s.access_token
    if (idemKey) headers['Idempotency-Key'] = idemKey
    let body
    if (opts.body instanceof Blob) {
      body = opts.body
      headers['Content-Type'] = opts.contentType || opts.body.type || 'application/octet-stream'
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body)
      headers['Content-Type'] = 'application/json'
    } else if (method !== 'GET') {
      body = '{}'
      headers['Content-Type'] = 'application/json'
    }
    let r
    try {
      r = await fetch(url, { method, headers, body })
    } catch (e) {
      const err = new ApiError(0, { title: '网络错误', detail: '无法连接服务器，请检查网络后重试' })
      if (!opts.silent) ElMessage.error(err.message)
      throw err
    }
    if (r.status === 401 && !recovered && s) {
      recovered = true
      await recoverSession()
      continue
    }
    if (!r.ok) {
      const p = await parseProblem(r)
      const err = new ApiError(r.status, p)
      if (!opts.silent) ElMessage.error(err.message)
      throw err
    }
    if (opts.raw) return r
    if (r.status === 204) return null
    const ct = r.headers.get('content-type') || ''
    return ct.includes('json') ? r.json() : r.text()
  }
}

// The log position a command's answer carries — at its top (`{position}`) or in its
// acknowledgement (`{ack: {position}}`); undefined when it wrote nothing. A read passed it as
// `min_position` waits until the read model shows what the command did (the client drops an
// undefined query value, so a read without one does not wait).
export function positionOf(answer) {
  const p = answer && (answer.position || (answer.ack && answer.ack.position))
  return p || undefined
}

export const api = {
  get: (path, query, opts = {}) => request('GET', path, { ...opts, query }),
  post: (path, body, opts = {}) => request('POST', path, { ...opts, body }),
  put: (path, body, opts = {}) => request('PUT', path, { ...opts, body }),
}

function withQuery(path, query) {
  let url = path.startsWith('/api') ? path : BASE + path
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') q.append(k, String(v))
  }
  const qs = q.toString()
  return qs ? url + (url.includes('?') ? '&' : '?') + qs : url
}

// The download worker (public/sw.js), registered on first use; null where service workers are
// unavailable (plain http on a LAN address is not a secure context).
let worker = null
async function downloadWorker() {
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return null
  const base = import.meta.env.BASE_URL
  try {
    if (!worker) worker = navigator.serviceWorker.register(base + 'sw.js', { scope: base + '__download/' })
    const reg = await worker
    if (reg.active) return reg.active
    const w = reg.installing || reg.waiting
    await new Promise((resolve, reject) => {
      const t = setTimeout(reject, 5000)
      w.addEventListener('statechange', () => {
        if (w.state === 'activated') {
          clearTimeout(t)
          resolve()
        } else if (w.state === 'redundant') reject(new Error('redundant'))
      })
    })
    return reg.active
  } catch {
    worker = null
    return null
  }
}

// Hand one download to the worker; resolves with its first report: started | failed.
function workerJob(sw, url, name) {
  return new Promise((resolve) => {
    const id = uuid()
    const ch = new MessageChannel()
    let frame = null
    const done = (msg) => {
      resolve(msg)
      ch.port1.close()
      // The browser's download continues without the frame; drop it a little later.
      setTimeout(() => frame && frame.remove(), msg.type === 'started' ? 60000 : 0)
    }
    const timer = setTimeout(() => done({ type: 'failed', status: 0 }), 60000)
    ch.port1.onmessage = (e) => {
      const m = e.data || {}
      if (m.type === 'registered') {
        frame = document.createElement('iframe')
        frame.hidden = true
        frame.src = import.meta.env.BASE_URL + '__download/' + id
        document.body.appendChild(frame)
      } else {
        clearTimeout(timer)
        done(m)
      }
    }
    const s = getSession()
    sw.postMessage({ type: 'download', id, url: new URL(url, location.href).href, token: s ? s.access_token : '', name }, [ch.port2])
  })
}

// A download streamed straight to the browser's download manager (through the worker, which adds
// the Authorization header): nothing is held in memory, however large the file. Falls back to
// download() where there is no service worker.
export async function streamDownload(path, query, fallbackName) {
  const sw = await downloadWorker()
  if (!sw) return download(path, query, fallbackName)
  const url = withQuery(path, query)
  for (let attempt = 0; ; attempt++) {
    const r = await workerJob(sw, url, fallbackName)
    if (r.type === 'started') return
    if (r.status === 401 && attempt === 0 && getSession()) {
      await recoverSession()
      continue
    }
    const err = r.status
      ? new ApiError(r.status, r.problem)
      : new ApiError(0, { title: '网络错误', detail: '导出失败：无法连接服务器，请检查网络后重试' })
    ElMessage.error(err.message)
    throw err
  }
}

// Download a file with the Authorization header (fetch → blob → object URL → <a download>): the
// whole file is held by the browser until saved; streamDownload() avoids that where it can.
export async function download(path, query, fallbackName) {
  const r = await request('GET', path, { query, raw: true })
  const blob = await r.blob()
  let name = fallbackName
  const cd = r.headers.get('content-disposition') || ''
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(cd)
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(cd)
  try {
    if (star) name = decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''))
    else if (plain) name = plain[1].trim()
  } catch {
    /* keep fallback */
  }
  saveBlob(blob, name)
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10000)
}

export async function login(username, password) {
  const r = await fetch(BASE + '/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  if (!r.ok) throw new ApiError(r.status, await parseProblem(r))
  const s = await r.json()
  setSession({ ...s, username })
  return s
}

export async function logout() {
  const s = getSession()
  if (s && s.refresh_token) {
    try {
      await fetch(BASE + '/auth/logout', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + s.access_token },
        body: JSON.stringify({ refresh_token: s.refresh_token }),
      })
    } catch {
      /* ignore */
    }
  }
  setSession(null)
}
