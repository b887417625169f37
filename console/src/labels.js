// Chinese labels and formatting helpers.
export const CATEGORIES = {
  policy_talk: '理论政策宣讲',
  culture: '文艺文化服务',
  health_environment: '卫生环保',
  aid: '扶贫帮困',
  elderly_care: '关爱老人',
  child_care: '关爱儿童',
  legal_aid: '法律服务',
  repair: '便民维修',
  medical: '医疗健康',
  education: '助学辅导',
}

export const STATUSES = {
  placed: '待审核',
  triaged: '待派单',
  rejected: '已驳回',
  dispatched: '待接单',
  declined: '已退单',
  accepted: '已接单',
  in_service: '服务中',
  served: '已签退',
  completed: '已办结',
  reviewed: '已评价',
  closed: '已归档',
  cancelled: '已取消',
  published: '待认领',
  claimed: '已满员',
  merged: '已合并',
}

export const STATUS_TAG = {
  placed: 'warning',
  triaged: 'primary',
  rejected: 'info',
  dispatched: 'primary',
  declined: 'danger',
  accepted: 'success',
  in_service: 'success',
  served: 'success',
  completed: 'success',
  reviewed: 'success',
  closed: 'info',
  cancelled: 'info',
  published: 'primary',
  claimed: 'success',
  merged: 'info',
}

export const WORKFLOWS = { 'dispatched-order': '点单派单', 'open-claim': '认领' }

export const LEVELS = { centre: '中心', institute: '实践所', station: '实践站', point: '实践点' }
export const CHILD_LEVEL = { centre: 'institute', institute: 'station', station: 'point' }

export const EVENT_LABELS = {
  OrderPlaced: '点单',
  OrderTriaged: '审单通过',
  OrderRejected: '驳回',
  OrderDispatched: '派单',
  OrderAccepted: '接单',
  OrderDeclined: '退单',
  VolunteerCheckedIn: '签到',
  VolunteerCheckedOut: '签退',
  OrderCompleted: '办结',
  OrderReviewed: '评价',
  OrderClosed: '归档',
  OrderCancelled: '取消',
  DeadlineScheduled: '时限开始',
  DeadlineWarned: '黄灯催办',
  DeadlineOverdue: '红灯督办',
  DeadlineCleared: '时限结束',
  TimerIgnored: '时限忽略',
  ExtensionRequested: '延期申请',
  ExtensionApproved: '同意延期',
  ExtensionDenied: '驳回延期',
  Claimed: '认领',
  Unclaimed: '放弃认领',
  OrderReworked: '返工',
  FollowUpRecorded: '回访',
  OrderMerged: '合并',
  DuplicateMerged: '并入重复订单',
}

export const DEADLINES = {
  triage: '审单时限',
  dispatch: '派单时限',
  sign_for: '签收时限',
  complete: '办结时限',
  review: '评价时限',
  archive: '归档时限',
  claim: '认领时限',
  fulfil: '办结时限',
}

export const TEAM_KINDS = { team: '志愿服务队', helper_unit: '帮扶单位' }

export const catLabel = (c) => CATEGORIES[c] || c || '—'
export const statusLabel = (s) => STATUSES[s] || s || '—'
// "签收接单时限", "派单时限": the workflow's label (签收接单, 派单) or the built-in name, with 时限.
export function deadlineLabel(d) {
  const l = (d && (d.label || DEADLINES[d.name])) || DEADLINES[d] || (typeof d === 'string' ? d : '')
  if (!l) return '—'
  return l.endsWith('时限') ? l : l + '时限'
}

const TZ = 'Asia/Shanghai'
const fmtFull = new Intl.DateTimeFormat('zh-CN', {
  timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
})
const fmtShort = new Intl.DateTimeFormat('zh-CN', {
  timeZone: TZ, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
})
const fmtDay = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' })

export function fmtTime(iso, short = false) {
  if (!iso) return '—'
  const d = new Date(iso)
  if (isNaN(d)) return iso
  return (short ? fmtShort : fmtFull).format(d)
}

// YYYY-MM-DD in Asia/Shanghai.
export function dayOf(date) {
  return fmtDay.format(date)
}

export function addDays(day, n) {
  const d = new Date(day + 'T00:00:00Z')
  d.setUTCDate(d.getUTCDate() + n)
  return d.toISOString().slice(0, 10)
}

// "3 小时" / "2 天 4 小时" / "15 分钟"; from 3 days on only days ("326 天"), hours add nothing there.
export function humanDuration(ms) {
  const m = Math.floor(Math.abs(ms) / 60000)
  if (m < 60) return `${m} 分钟`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h} 小时`
  const d = Math.floor(h / 24)
  const rh = h % 24
  return rh && d < 3 ? `${d} 天 ${rh} 小时` : `${d} 天`
}

// Light of one deadline at `now`: green | yellow | red.
export function deadlineLight(dl, now) {
  const due = dl.due_at ? Date.parse(dl.due_at) : NaN
  const warn = dl.warn_at ? Date.parse(dl.warn_at) : NaN
  if (dl.light === 'red' || (!isNaN(due) && now >= due)) return 'red'
  if (dl.light === 'yellow' || (!isNaN(warn) && now >= warn)) return 'yellow'
  return 'green'
}

// Working time as people say it: "45 分钟", "3.5 工作小时".
export function humanWorking(minutes) {
  const m = Math.abs(minutes)
  if (m < 60) return `${m} 分钟`
  const h = m / 60
  return `${h < 10 ? h.toFixed(1).replace(/\.0$/, '') : Math.round(h)} 工作小时`
}

// Time left on a deadline: working time when its limit counts working time (the server
// counts it with the workflow's calendar: office hours, weekends, holidays), else clock time.
export function remainingText(dl, now) {
  if (dl.working_time && typeof dl.minutes_left === 'number') {
    const m = dl.minutes_left
    return m >= 0 ? `剩 ${humanWorking(m)}` : `超时 ${humanWorking(m)}`
  }
  const due = dl.due_at ? Date.parse(dl.due_at) : NaN
  if (isNaN(due)) return '—'
  const diff = due - now
  return diff >= 0 ? `剩 ${humanDuration(diff)}` : `超时 ${humanDuration(diff)}`
}

// The most urgent running deadline of an order (earliest due), with its light.
export function orderLight(order, now) {
  const dls = (order && order.deadlines) || []
  if (!dls.length) return null
  const rank = { red: 2, yellow: 1, green: 0 }
  let best = null
  for (const dl of dls) {
    const light = deadlineLight(dl, now)
    const due = Date.parse(dl.due_at) || Infinity
    if (!best || rank[light] > rank[best.light] || (rank[light] === rank[best.light] && due < best.due)) {
      best = { dl, light, due, text: remainingText(dl, now) }
    }
  }
  return best
}

// When an event happened: the business time in its payload (`at`; history replayed later keeps
// it), else when it was recorded.
export function eventTime(e, payload) {
  return (payload && payload.at) || e.recorded_at
}

export function pendingExtension(order) {
  return ((order && order.deadlines) || []).find((d) => d.extension_requested_until)
}

export function hours(min, digits = 1) {
  if (min === undefined || min === null || isNaN(min)) return '—'
  return (min / 60).toFixed(digits)
}

export function pct(x) {
  if (x === undefined || x === null || isNaN(x)) return '—'
  return (x * 100).toFixed(1) + '%'
}

// "1 working day" → "1 个工作日", "7 calendar days" → "7 个自然日", "4 hours" → "4 小时".
// An approved extension's limit reads "延期至 2026-11-27 16:06:00.0 +08:00:00" → "延期至 2026-11-27 16:06".
export function limitLabel(s) {
  if (!s) return ''
  const ext = /^延期至\s*(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})/.exec(s)
  if (ext) return `延期至 ${ext[1]} ${ext[2]}`
  return String(s)
    .replace(/(\d+)\s*working\s*days?/i, '$1 个工作日')
    .replace(/(\d+)\s*calendar\s*days?/i, '$1 个自然日')
    .replace(/(\d+)\s*days?/i, '$1 天')
    .replace(/(\d+)\s*hours?/i, '$1 小时')
    .replace(/(\d+)\s*minutes?/i, '$1 分钟')
}
