// Server-Sent Events over fetch (EventSource can't send the Authorization header).
import { BASE, recoverSession } from './client'
import { getSession } from './session'

/**
 * Subscribe to an SSE endpoint. handlers: { onEvent(name, data), onState(state) }
 * state: 'connecting' | 'open' | 'retrying'. Returns a function that stops it.
 */
export function subscribe(path, handlers) {
  let stopped = false
  let ctrl = null
  let backoff = 500

  async function run() {
    while (!stopped) {
      handlers.onState && handlers.onState('connecting')
      ctrl = new AbortController()
      let needAuth = false
      try {
        const s = getSession()
        const r = await fetch(BASE + path, {
          headers: { Accept: 'text/event-stream', Authorization: 'Bearer ' + (s ? s.access_token : '') },
          signal: ctrl.signal,
          cache: 'no-store',
        })
        if (r.status === 401) {
          needAuth = true
        } else if (!r.ok || !r.body) {
          let problem = { status: r.status, detail: `实时连接失败（${r.status}）` }
          try {
            problem = await r.json()
          } catch {
            /* keep the default */
          }
          handlers.onEvent && handlers.onEvent('error', problem)
          throw new Error('sse status ' + r.status)
        } else {
          handlers.onState && handlers.onState('open')
          backoff = 500
          needAuth = await readStream(r.body, handlers)
        }
      } catch (e) {
        if (stopped) return
      }
      if (stopped) return
      if (needAuth) {
        await recoverSession()
        continue
      }
      handlers.onState && handlers.onState('retrying')
      await sleep(backoff)
      backoff = Math.min(backoff * 2, 15000)
    }
  }

  run()
  return () => {
    stopped = true
    if (ctrl) ctrl.abort()
  }
}

// Parse the stream; returns true when the server ended it with a 401 problem.
async function readStream(body, handlers) {
  const reader = body.getReader()
  const dec = new TextDecoder()
  let buf = ''
  let name = 'message'
  let data = []
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return false
    buf += dec.decode(value, { stream: true })
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      let line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line === '') {
        if (data.length) {
          const text = data.join('\n')
          let parsed = text
          try {
            parsed = JSON.parse(text)
          } catch {
            /* plain text */
          }
          if (name === 'error') {
            const status = parsed && parsed.status
            handlers.onEvent && handlers.onEvent('error', parsed)
            reader.cancel().catch(() => {})
            return status === 401
          }
          handlers.onEvent && handlers.onEvent(name, parsed)
        }
        name = 'message'
        data = []
        continue
      }
      if (line.startsWith(':')) continue // keep-alive comment
      const c = line.indexOf(':')
      const field = c < 0 ? line : line.slice(0, c)
      let val = c < 0 ? '' : line.slice(c + 1)
      if (val.startsWith(' ')) val = val.slice(1)
      if (field === 'event') name = val
      else if (field === 'data') data.push(val)
    }
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}
