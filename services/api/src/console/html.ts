// HTML as the console writes it: every value interpolated into `html` is escaped unless it is
// itself Html (sub IDs, names and URLs are other people's input).

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

function render(value: Value): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Html(out);
}

/** JSON for a `<script type="application/json">` block: no `<` can end the element early. */
export const jsonScript = (id: string, value: unknown) =>
  new Html(`<script type="application/json" id="${escapeHtml(id)}">${JSON.stringify(value).replace(/</g, '\\u003c')}</script>`);

// ——— Numbers ———

const integer = new Intl.NumberFormat('en-US');

/** A decimal string (as the report API writes money) with thousands separators, never through a float. */
export function formatDecimal(value: string): string {
  const [, sign, whole, fraction] = /^(-?)(\d+)(\.\d+)?$/.exec(value) ?? [];
  if (whole === undefined) return value;
  return `${sign}${whole.replace(/\B(?=(\d{3})+$)/g, ',')}${fraction ?? ''}`;
}

/**
 * One number of the page as an element whose data-metric names it and whose data-value is the
 * API's own value, as text: the browser test compares them with the report API's answer.
 */
export function metric(name: string, value: number | string | null, shown?: string): Html {
  const raw = value === null ? '' : String(value);
  const text = shown ?? (value === null ? '—' : typeof value === 'number' ? integer.format(value) : formatDecimal(value));
  return html`<span class="num" data-metric="${name}" data-value="${raw}">${text}</span>`;
}

/** Money by currency (never summed across currencies): one metric per currency, or a dash. */
export function money(name: string, byCurrency: Record<string, string>): Html {
  const entries = Object.entries(byCurrency);
  if (entries.length === 0) return html`<span class="none">—</span>`;
  return html`${entries.map(([currency, value], i) => html`${i > 0 ? html`<br>` : ''}${metric(`${name}.${currency}`, value)} <abbr class="cur">${currency}</abbr>`)}`;
}

export const count = (n: number) => integer.format(n);

export const when = (at: Date) => at.toISOString().replace('T', ' ').slice(0, 16);
