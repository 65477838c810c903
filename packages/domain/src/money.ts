import Decimal from 'decimal.js';

export { Decimal };

/** Decimal arithmetic with room to spare (40 significant digits; decimal.js keeps 20 by default): sums and products of numeric(18,4) values are never rounded. */
export const ExactDecimal = Decimal.clone({ precision: 40 });

// Money is numeric(18,4) in Postgres: at most 14 integer digits and 4 decimal places.
export const MONEY_PATTERN = /^\d{1,14}(\.\d{1,4})?$/;
export const PERCENT_PATTERN = /^\d{1,3}(\.\d{1,4})?$/;

/** Money as a decimal string: at least two decimal places, never a float. */
export function formatMoney(value: Decimal.Value | { toString(): string }): string {
  const d = new Decimal(value.toString());
  return d.toFixed(Math.max(2, d.decimalPlaces()));
}

export function formatDecimal(value: Decimal.Value | { toString(): string }): string {
  return new Decimal(value.toString()).toString();
}

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/** An ISO 4217 code, in upper case (USD, EUR…). */
export function isCurrency(code: string): boolean {
  return /^[A-Z]{3}$/.test(code) && CURRENCIES.has(code);
}
