// ECharts with only what the dashboard and the command centre use.
import * as echarts from 'echarts/core'
import { LineChart, BarChart, PieChart } from 'echarts/charts'
import { GridComponent, TooltipComponent, LegendComponent, TitleComponent, DatasetComponent, DataZoomComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'
import { onBeforeUnmount, shallowRef, watch } from 'vue'

echarts.use([LineChart, BarChart, PieChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent, DatasetComponent, DataZoomComponent, CanvasRenderer])

// useChart(elRef, theme?) → { chart: shallowRef, set(option) }. The element may appear later (v-if).
export function useChart(elRef, theme) {
  const chart = shallowRef(null)
  let last = null
  let ro = null
  function dispose() {
    if (ro) ro.disconnect()
    ro = null
    if (chart.value) chart.value.dispose()
    chart.value = null
  }
  watch(
    elRef,
    (el) => {
      dispose()
      if (!el) return
      const c = echarts.init(el, theme, { renderer: 'canvas' })
      if (last) c.setOption(last, true)
      ro = new ResizeObserver(() => c.resize())
      ro.observe(el)
      chart.value = c
    },
    { flush: 'post' },
  )
  onBeforeUnmount(dispose)
  function set(option) {
    last = option
    if (chart.value) chart.value.setOption(option, true)
  }
  return { chart, set }
}

export const PALETTE = ['#409eff', '#e6a23c', '#67c23a', '#f56c6c', '#909399', '#9b59b6', '#1abc9c', '#e67e22', '#34495e', '#c0392b']
