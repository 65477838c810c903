import type { FieldErrors } from '@trackway/http';
import { BOARD_PATH, LOGOUT_PATH } from '../admin-sessions';
import type { AssetName } from './assets';
import { type Html, html } from './html';
import { FILTER_KEYS, type FormValues } from './params';

export type PageName = 'overview' | 'reports' | 'review' | 'endpoints';

const NAV: [PageName, string, string][] = [
  ['overview', '/console', 'Overview'],
  ['reports', '/console/reports', 'Reports'],
  ['review', '/console/review', 'Review'],
  ['endpoints', '/console/endpoints', 'Endpoints'],
];

export interface PageContext {
  assets: Record<AssetName, string>;
  /** The session's CSRF token for the page's forms (null for a bearer token). */
  csrf: string | null;
}

/** A whole page: navigation, the logout button, a message after a form, then `body`. */
export function page(
  context: PageContext,
  o: { name: PageName; title: string; body: Html; message?: { kind: 'ok' | 'error'; text: string } | null; chart?: boolean },
): string {
  const { assets } = context;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · Trackway console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assets['console.css']}">
${o.chart ? html`<link rel="stylesheet" href="${assets['uPlot.min.css']}"><script defer src="${assets['uPlot.min.js']}"></script><script defer src="${assets['console.js']}"></script>` : ''}
</head><body>
<header><nav aria-label="Console">
<strong class="brand">Trackway</strong>
${NAV.map(([name, href, label]) => html`<a href="${href}"${name === o.name ? html` aria-current="page"` : ''}>${label}</a>`)}
<a href="${BOARD_PATH}">Queues</a>
<form method="post" action="${LOGOUT_PATH}" class="logout"><button type="submit">Log out</button></form>
</nav></header>
<main>
<h1>${o.title}</h1>
${o.message ? html`<p class="message ${o.message.kind}" role="${o.message.kind === 'error' ? 'alert' : 'status'}">${o.message.text}</p>` : ''}
${o.body}
</main>
</body></html>`.text;
}

export const csrfField = (context: PageContext) => (context.csrf ? html`<input type="hidden" name="_csrf" value="${context.csrf}">` : '');

const ZONES = [
  'UTC',
  'Europe/London',
  'Europe/Berlin',
  'Europe/Moscow',
  'Asia/Dubai',
  'Asia/Kolkata',
  'Asia/Singapore',
  'Asia/Tokyo',
  'Australia/Sydney',
  'America/New_York',
  'America/Chicago',
  'America/Denver',
  'America/Los_Angeles',
  'America/Sao_Paulo',
];

/** The range form (GET): from, to (exclusive), zone, and what conversions count by; the page's filters ride along hidden. */
export function rangeForm(action: string, form: FormValues, hidden: Record<string, string | undefined> = {}): Html {
  const carried = { ...Object.fromEntries(FILTER_KEYS.map((key) => [key, form[key]])), ...hidden };
  return html`<form method="get" action="${action}" class="range">
<label>From ${dateInput('from', form.from)}</label>
<label>To (exclusive) ${dateInput('to', form.to)}</label>
<label>Zone <input type="text" name="tz" value="${form.tz ?? 'UTC'}" list="zones" size="16"></label>
<datalist id="zones">${ZONES.map((zone) => html`<option value="${zone}">`)}</datalist>
<label>Count conversions at <select name="count_by">
<option value="conversion"${form.count_by !== 'click' ? html` selected` : ''}>their time</option>
<option value="click"${form.count_by === 'click' ? html` selected` : ''}>their click's time</option>
</select></label>
${Object.entries(carried).map(([key, value]) => (value === undefined ? '' : html`<input type="hidden" name="${key}" value="${value}">`))}
<button type="submit">Show</button>
</form>`;
}

/** A date picker for a date; a text field for a date-time with its zone (the API takes both). */
const dateInput = (name: string, value = '') =>
  html`<input type="${value === '' || /^\d{4}-\d{2}-\d{2}$/.test(value) ? 'date' : 'text'}" name="${name}" value="${value}" required>`;

/** A 400 (or other) on a page: what was wrong, field by field. */
export function problems(message: string, fields?: FieldErrors): Html {
  return html`<div class="problem" role="alert"><p>${message}</p>${
    fields && Object.keys(fields).length > 0
      ? html`<ul>${Object.entries(fields).map(([field, text]) => html`<li><code>${field}</code> ${text}</li>`)}</ul>`
      : ''
  }</div>`;
}
