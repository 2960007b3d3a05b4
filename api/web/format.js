// Amounts and dates in the firm's locale. Amounts stay decimal strings end to end:
// Intl.NumberFormat formats a string exactly, so no amount ever passes through a float.

export function money(amount, currency, locale) {
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}

/// A calendar date (`YYYY-MM-DD`, the firm's date) in the firm's locale.
export function date(isoDate, locale) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(isoDate || '')) return isoDate || '';
  try {
    return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeZone: 'UTC' }).format(
      new Date(`${isoDate}T00:00:00Z`),
    );
  } catch {
    return isoDate;
  }
}

/// An instant (RFC 3339) as a date and time in the firm's locale.
export function instant(iso, locale) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso || '';
  try {
    return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(when);
  } catch {
    return iso;
  }
}
