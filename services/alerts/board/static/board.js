// Starts GOV.UK Frontend's components (error summary focus, service navigation on narrow
// screens, skip link, buttons that ignore a double click), then keeps a board page current
// while risk changes arrive: asks the service every few seconds whether anything changed
// and, if so, fetches the page again and swaps in its live region. Without JavaScript the
// page is the same, current when loaded.
import { initAll } from '/board/static/govuk/govuk-frontend.min.js'

initAll()

const region = document.querySelector('[data-live-region]')
const POLL_MS = 5000

async function version () {
  const response = await fetch('/board/live', { credentials: 'same-origin', cache: 'no-store' })
  if (!response.ok) return null
  return (await response.json()).version
}

async function refresh () {
  const response = await fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' })
  if (!response.ok || response.redirected) return
  const page = new DOMParser().parseFromString(await response.text(), 'text/html')
  const fresh = page.querySelector('[data-live-region]')
  // Never swap content from under someone using it.
  if (fresh && !region.contains(document.activeElement)) {
    region.innerHTML = fresh.innerHTML
    initAll({ scope: region })
    document.body.dispatchEvent(new CustomEvent('board:updated'))
  }
}

if (region) {
  let seen = await version().catch(() => null)
  setInterval(async () => {
    const now = await version().catch(() => null)
    if (now !== null && now !== seen) {
      seen = now
      await refresh().catch(() => {})
    }
  }, POLL_MS)
}
