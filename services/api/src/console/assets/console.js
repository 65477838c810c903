// The overview's chart: uPlot (served by this server, like this file) over the page's
// <script type="application/json" id="chart-data"> block. Everything else works without scripts.
(() => {
  const source = document.getElementById('chart-data');
  const target = document.getElementById('chart');
  if (!source || !target || typeof uPlot === 'undefined') return;
  const data = JSON.parse(source.textContent);
  const colours = ['#2456c7', '#17733a', '#c25e00', '#8e24aa', '#00838f', '#b3261e', '#5d4037', '#3949ab'];
  const money = data.series.filter((s) => s.scale === 'money');
  const height = 320;
  const options = {
    width: target.clientWidth,
    height,
    // Hours and days of the report's zone, not the browser's.
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), data.tz),
    scales: { x: { time: true }, count: {}, money: {} },
    series: [
      { label: data.unit === 'day' ? 'Day' : 'Hour' },
      ...data.series.map((s, i) => ({
        label: s.label,
        scale: s.scale,
        stroke: colours[i % colours.length],
        width: 2,
        dash: s.scale === 'money' ? [6, 4] : undefined,
        points: { show: data.x.length <= 60 },
      })),
    ],
    axes: [
      {},
      { scale: 'count', label: 'Clicks, conversions' },
      ...(money.length > 0 ? [{ scale: 'money', side: 1, label: 'Revenue, payout', grid: { show: false } }] : []),
    ],
  };
  const plot = new uPlot(options, [data.x, ...data.series.map((s) => s.values)], target);
  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => plot.setSize({ width: target.clientWidth, height }));
  });
  target.dataset.rendered = 'true';
})();
