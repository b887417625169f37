// Client-side helpers for statistics: series aggregation by day/week/month.
import { addDays } from './labels'

// Fill every day between from and to, then group by granularity.
export function series(byDay, from, to, gran) {
  const map = new Map((byDay || []).map((d) => [d.day, d]))
  const buckets = new Map()
  for (let day = from; day <= to; day = addDays(day, 1)) {
    const d = map.get(day) || {}
    const key = gran === 'month' ? day.slice(0, 7) : gran === 'week' ? weekStart(day) : day
    const b = buckets.get(key) || { key, received: 0, dispatched: 0, completed: 0 }
    b.received += d.received || 0
    b.dispatched += d.dispatched || 0
    b.completed += d.completed || 0
    buckets.set(key, b)
  }
  return [...buckets.values()]
}

function weekStart(day) {
  const d = new Date(day + 'T00:00:00Z')
  const dow = (d.getUTCDay() + 6) % 7 // Monday = 0
  return addDays(day, -dow)
}
