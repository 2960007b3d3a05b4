// Portico's reference client portal: activation, login, dashboard, invoices and the Wallet,
// built only on the public HTTP API. No framework and no build step; the DOM is built with
// createElement and textContent only, so server data is never parsed as HTML.

import { api, ApiError, hasSession, setCsrf } from './api.js';
import { date, instant, money } from './format.js';

const FIRM_KEY = 'portico.firm';
const main = document.getElementById('main');
const state = { session: null, brand: null };

// ---------------------------------------------------------------------------------------
// DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(title, ...nodes) {
  document.title = `${title} · ${state.brand ? state.brand.name : 'Client portal'}`;
  main.replaceChildren(...nodes);
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function alertBox() {
  return h('p', { class: 'alert', role: 'alert', hidden: true });
}

function say(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

function locale() {
  return (state.brand && state.brand.locale) || 'en-US';
}

function brandBlock(brand) {
  return h(
    'div',
    { class: 'card-brand' },
    brand.logo_url ? h('img', { src: brand.logo_url, alt: `${brand.name} logo`, class: 'logo' }) : null,
    h('p', { class: 'firm-name', text: brand.name }),
  );
}

function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) return error.message;
    if (error.status === 503) return 'The portal is briefly unavailable. Try again in a moment.';
    if (error.status >= 500) return 'Something went wrong on our side. Try again in a moment.';
    return error.message;
  }
  return 'Something went wrong. Reload the page and try again.';
}

// ---------------------------------------------------------------------------------------
// Navigation

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-nav], nav a');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', render);

async function render() {
  const path = location.pathname;
  const invite = path.match(/^\/invite\/([^/]+)$/);
  const wallet = path.match(/^\/wallet\/([^/]+)$/);
  try {
    if (invite) return await activation(decodeURIComponent(invite[1]));
    if (path === '/login') return await login();
    if (!(await ensureSession())) return;
    if (path === '/' || path === '/dashboard') return await dashboard();
    if (path === '/invoices') return await invoices();
    if (wallet) return await walletPage(decodeURIComponent(wallet[1]));
    show('Not found', h('section', { class: 'card' }, h('h1', { text: 'Page not found' }),
      h('p', {}, h('a', { href: '/dashboard', 'data-nav': true, text: 'Go to your dashboard' }))));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setCsrf(null);
      state.session = null;
      return navigate(loginPath(), { replace: true });
    }
    show('Error', h('section', { class: 'card' }, h('h1', { text: 'Something went wrong' }),
      h('p', { role: 'alert', text: describe(error) })));
  }
}

function loginPath() {
  const firm = (state.session && state.session.firm_id) || localStorage.getItem(FIRM_KEY);
  return firm ? `/login?firm=${encodeURIComponent(firm)}` : '/login';
}

// ---------------------------------------------------------------------------------------
// Session and the signed-in frame

async function ensureSession() {
  if (!hasSession() || !state.session) {
    try {
      const session = await api('GET', '/v1/portal/sessions/current');
      begin(session);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        navigate(loginPath(), { replace: true });
        return false;
      }
      throw error;
    }
  }
  if (!state.brand) state.brand = await api('GET', `/v1/portal/firms/${state.session.firm_id}`);
  frame(true);
  return true;
}

function begin(session) {
  setCsrf(session.csrf_token);
  state.session = session;
  localStorage.setItem(FIRM_KEY, session.firm_id);
}

function frame(signedIn) {
  const top = document.getElementById('top');
  top.hidden = !signedIn;
  if (!signedIn) return;
  const logo = document.getElementById('brand-logo');
  if (state.brand.logo_url) {
    logo.src = state.brand.logo_url;
    logo.alt = `${state.brand.name} logo`;
    logo.hidden = false;
  } else {
    logo.hidden = true;
  }
  document.getElementById('brand-name').textContent = state.brand.name;
  document.getElementById('who-name').textContent = state.session.name || state.session.email || '';
  for (const tab of ['dashboard', 'invoices']) {
    const el = document.getElementById(`tab-${tab}`);
    const current = location.pathname === `/${tab}` || (tab === 'dashboard' && location.pathname === '/');
    if (current) el.setAttribute('aria-current', 'page');
    else el.removeAttribute('aria-current');
  }
}

document.getElementById('logout').addEventListener('click', async () => {
  const target = loginPath();
  try {
    await api('DELETE', '/v1/portal/sessions/current');
  } catch {
    // Already signed out or expired: the login page is where this ends either way.
  }
  setCsrf(null);
  state.session = null;
  state.brand = null;
  navigate(target, { replace: true });
});

// ---------------------------------------------------------------------------------------
// Activation: the invite link

const INVITE_GONE = {
  used: 'This invite link was already used to create an account. Log in instead.',
  expired: 'This invite link has expired. Ask your firm to send you a new one.',
  revoked: 'This invite link was withdrawn by your firm.',
  superseded: 'A newer invite was sent to you. Use the link in the latest email.',
};

function goneMessage(error) {
  return INVITE_GONE[error.problem.reason] || 'This invite link is no longer valid.';
}

async function activation(token) {
  frame(false);
  let invite;
  try {
    invite = await api('GET', `/v1/portal/invites/${encodeURIComponent(token)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 410)) throw error;
    const message = error.status === 404
      ? 'This invite link is not valid. Check that you opened the whole link from the email.'
      : goneMessage(error);
    const firm = localStorage.getItem(FIRM_KEY);
    return show('Invite link', h('section', { class: 'card narrow', 'aria-labelledby': 'gone-title' },
      h('h1', { id: 'gone-title', text: 'Invite link not valid' }),
      h('p', { class: 'alert', role: 'alert', id: 'invite-problem', text: message }),
      firm ? h('p', {}, h('a', { href: `/login?firm=${encodeURIComponent(firm)}`, 'data-nav': true, text: 'Go to the login page' })) : null));
  }
  state.brand = invite.firm;
  localStorage.setItem(FIRM_KEY, invite.firm_id);
  const problem = alertBox();
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128, 'aria-describedby': 'password-hint' });
  const confirmation = h('input', { id: 'password-confirmation', name: 'password_confirmation', type: 'password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'create-account', text: 'CREATE ACCOUNT' });
  const form = h('form', { novalidate: true, 'aria-describedby': 'activation-intro' },
    h('label', { for: 'username', text: 'Username' }),
    h('input', { id: 'username', name: 'username', type: 'email', value: invite.email, readonly: true, 'aria-readonly': 'true', autocomplete: 'username' }),
    h('label', { for: 'password', text: 'Password' }),
    password,
    h('p', { class: 'hint', id: 'password-hint', text: 'At least 12 characters; not your email address.' }),
    h('label', { for: 'password-confirmation', text: 'Confirm password' }),
    confirmation,
    problem,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say(problem, '');
    if (password.value.length < 12) return say(problem, 'The password needs at least 12 characters.');
    if (password.value !== confirmation.value) return say(problem, 'The two passwords differ.');
    submit.disabled = true;
    try {
      const created = await api('POST', `/v1/portal/invites/${encodeURIComponent(token)}/accept`, {
        body: { password: password.value, password_confirmation: confirmation.value },
      });
      begin({ ...created.session, name: invite.name, email: invite.email });
      // The token leaves the address bar and the history entry.
      navigate(`/dashboard?min_position=${created.position}`, { replace: true });
    } catch (error) {
      submit.disabled = false;
      if (error instanceof ApiError && error.status === 410) return say(problem, goneMessage(error));
      say(problem, error instanceof ApiError && error.status === 422 ? capitalise(error.message) : describe(error));
    }
  });
  show('Create your account', h('section', { class: 'card narrow', 'aria-labelledby': 'activation-title' },
    brandBlock(invite.firm),
    h('h1', { id: 'activation-title', text: 'Create your account' }),
    h('p', { id: 'activation-intro', text: `${invite.firm.name} invited you to its client portal. Choose a password to finish.` }),
    form));
  password.focus();
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) + (text.endsWith('.') ? '' : '.') : text;
}

// ---------------------------------------------------------------------------------------
// Login

async function login() {
  frame(false);
  const firmId = new URLSearchParams(location.search).get('firm') || localStorage.getItem(FIRM_KEY);
  if (!firmId) {
    return show('Log in', h('section', { class: 'card narrow' }, h('h1', { text: 'Log in' }),
      h('p', { role: 'alert', text: 'Open the login link your firm sent you, or the invite link in your email.' })));
  }
  let brand;
  try {
    brand = await api('GET', `/v1/portal/firms/${encodeURIComponent(firmId)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 422)) throw error;
    localStorage.removeItem(FIRM_KEY);
    return show('Log in', h('section', { class: 'card narrow' }, h('h1', { text: 'Log in' }),
      h('p', { role: 'alert', text: 'This login link does not belong to any firm. Use the link your firm sent you.' })));
  }
  state.brand = brand;
  const problem = alertBox();
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'log-in', text: 'LOG IN' });
  const form = h('form', { novalidate: true },
    h('label', { for: 'email', text: 'Email' }), email,
    h('label', { for: 'password', text: 'Password' }), password,
    problem, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say(problem, '');
    submit.disabled = true;
    try {
      const created = await api('POST', '/v1/portal/sessions', {
        body: { firm_id: firmId, email: email.value, password: password.value },
      });
      begin({ ...created.session, email: email.value });
      state.session = await api('GET', '/v1/portal/sessions/current');
      navigate('/dashboard', { replace: true });
    } catch (error) {
      submit.disabled = false;
      if (error instanceof ApiError && error.status === 401) return say(problem, 'The email or password is wrong.');
      if (error instanceof ApiError && error.status === 429) {
        return say(problem, `Too many attempts. Try again in ${error.retryAfter || 'a few'} seconds.`);
      }
      say(problem, describe(error));
    }
  });
  show('Log in', h('section', { class: 'card narrow', 'aria-labelledby': 'login-title' },
    brandBlock(brand), h('h1', { id: 'login-title', text: 'Log in' }), form));
}

// ---------------------------------------------------------------------------------------
// Dashboard: unpaid invoices and the project team

function statusLabel(invoice) {
  if (invoice.payment_pending) return ['Payment pending', 'pending'];
  return {
    open: ['Open', 'open'],
    paid: ['Paid', 'paid'],
    past_due: ['Past due', 'past-due'],
    void: ['Void', 'void'],
  }[invoice.status] || [invoice.status, 'open'];
}

function badge(invoice) {
  const [label, kind] = statusLabel(invoice);
  return h('span', { class: `badge ${kind}`, text: label });
}

function consistency(params) {
  const wanted = new URLSearchParams(location.search).get('min_position');
  if (wanted) params.set('min_position', wanted);
  return params;
}

async function checkout(invoiceIds, problem, buttons) {
  say(problem, '');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const created = await api('POST', '/v1/portal/checkouts', { body: { invoice_ids: invoiceIds } });
    navigate(`/wallet/${created.id}`);
  } catch (error) {
    buttons.forEach((b) => { b.disabled = false; });
    if (error instanceof ApiError && error.status === 409) {
      const reasons = (error.problem.invoices || []).map((i) => i.reason).join('; ');
      return say(problem, `These invoices cannot be paid now: ${reasons || error.message}. Reload to see their current state.`);
    }
    say(problem, describe(error));
  }
}

async function dashboard() {
  const params = consistency(new URLSearchParams());
  const project = new URLSearchParams(location.search).get('project');
  if (project) params.set('project_id', project);
  const data = await api('GET', `/v1/portal/dashboard?${params}`);
  state.brand = data.firm;
  frame(true);
  const problem = alertBox();
  const selected = new Set();
  const paySelected = h('button', { type: 'button', class: 'primary', id: 'pay-selected', disabled: true, text: 'PAY SELECTED' });
  const payNowButtons = [];
  const updateSelection = () => {
    paySelected.disabled = selected.size === 0;
    paySelected.textContent = selected.size ? `PAY SELECTED (${selected.size})` : 'PAY SELECTED';
  };
  paySelected.addEventListener('click', () => checkout([...selected], problem, [paySelected, ...payNowButtons]));

  const rows = data.unpaid_invoices.map((invoice) => {
    const box = h('input', {
      type: 'checkbox', id: `select-${invoice.id}`, 'data-invoice': invoice.id, disabled: invoice.payment_pending,
      'aria-label': `Select invoice ${invoice.number}`,
      onchange: (event) => {
        if (event.target.checked) selected.add(invoice.id);
        else selected.delete(invoice.id);
        updateSelection();
      },
    });
    const payNow = h('button', {
      type: 'button', class: 'secondary pay-now', 'data-invoice': invoice.id, disabled: invoice.payment_pending,
      'aria-label': `Pay invoice ${invoice.number} now`, text: 'PAY NOW',
    });
    payNow.addEventListener('click', () => checkout([invoice.id], problem, [paySelected, ...payNowButtons]));
    payNowButtons.push(payNow);
    return h('tr', { 'data-invoice': invoice.id },
      h('td', { class: 'pick' }, box),
      h('th', { scope: 'row', text: invoice.number }),
      h('td', { 'data-label': 'Project', text: invoice.project_name }),
      h('td', { 'data-label': 'Due', text: date(invoice.due_on, locale()) }),
      h('td', { 'data-label': 'Status' }, badge(invoice)),
      h('td', { class: 'num', 'data-label': 'Balance', text: money(invoice.balance, invoice.currency, locale()) }),
      h('td', {}, payNow));
  });

  const invoicesSection = h('section', { class: 'panel', 'aria-labelledby': 'unpaid-title' },
    h('div', { class: 'panel-head' },
      h('h1', { id: 'unpaid-title', text: 'Unpaid invoices' }),
      data.unpaid_invoices.length ? paySelected : null),
    problem,
    data.unpaid_invoices.length
      ? h('table', { class: 'invoices pickable', id: 'unpaid-invoices' },
        h('caption', { class: 'visually-hidden', text: 'Unpaid invoices: open or past due' }),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Select' })),
          h('th', { scope: 'col', text: 'Invoice' }), h('th', { scope: 'col', text: 'Project' }),
          h('th', { scope: 'col', text: 'Due' }), h('th', { scope: 'col', text: 'Status' }),
          h('th', { scope: 'col', class: 'num', text: 'Balance' }),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Pay' })))),
        h('tbody', {}, rows))
      : h('p', { class: 'empty', id: 'nothing-unpaid', text: 'Nothing to pay right now. Thank you!' }));

  const picker = h('select', { id: 'project-filter', name: 'project' },
    h('option', { value: '', text: 'All Jobs', selected: !data.selected_project_id }),
    data.projects.map((p) => h('option', { value: p.id, text: p.name, selected: p.id === data.selected_project_id })));
  const team = h('ul', { class: 'team', id: 'team', 'aria-live': 'polite' }, teamItems(data.team));
  picker.addEventListener('change', async () => {
    const next = new URLSearchParams();
    if (picker.value) next.set('project', picker.value);
    history.replaceState(null, '', `/dashboard${next.size ? `?${next}` : ''}`);
    const query = new URLSearchParams();
    if (picker.value) query.set('project_id', picker.value);
    team.setAttribute('aria-busy', 'true');
    try {
      const fresh = await api('GET', `/v1/portal/dashboard?${query}`);
      team.replaceChildren(...teamItems(fresh.team));
    } catch (error) {
      say(problem, describe(error));
    } finally {
      team.removeAttribute('aria-busy');
    }
  });
  const teamSection = h('aside', { class: 'panel side', 'aria-labelledby': 'team-title' },
    h('h2', { id: 'team-title', text: 'PROJECT TEAM' }),
    h('label', { for: 'project-filter', text: 'Project' }), picker, team);

  show('Dashboard', h('div', { class: 'layout' }, invoicesSection, teamSection));
}

function teamItems(members) {
  if (!members.length) return [h('li', { class: 'empty', text: 'No team members on this project yet.' })];
  return members.map((m) => h('li', { class: 'member', 'data-member': m.member_id },
    h('span', { class: 'member-name', text: m.name }),
    h('span', { class: 'member-role', text: m.role }),
    h('a', { href: `mailto:${m.email}`, text: m.email })));
}

// ---------------------------------------------------------------------------------------
// Invoices: every invoice with its status, and the summary

async function invoices() {
  const data = await api('GET', `/v1/portal/invoices?${consistency(new URLSearchParams())}`);
  const rows = data.invoices.map((invoice) => h('tr', { 'data-invoice': invoice.id },
    h('th', { scope: 'row', text: invoice.number }),
    h('td', { 'data-label': 'Project', text: invoice.project_name }),
    h('td', { 'data-label': 'Issued', text: date(invoice.issued_on, locale()) }),
    h('td', { 'data-label': 'Due', text: date(invoice.due_on, locale()) }),
    h('td', { class: 'num', 'data-label': 'Total', text: money(invoice.total, invoice.currency, locale()) }),
    h('td', { class: 'num', 'data-label': 'Balance', text: money(invoice.balance, invoice.currency, locale()) }),
    h('td', { 'data-label': 'Current Status', class: 'status' }, badge(invoice))));
  const s = data.summary;
  const unpaid = s.unpaid_amount.length
    ? s.unpaid_amount.map((a) => h('dd', { class: 'unpaid-amount', text: money(a.amount, a.currency, locale()) }))
    : [h('dd', { class: 'unpaid-amount', text: 'Nothing unpaid' })];
  const summary = h('aside', { class: 'panel side', 'aria-labelledby': 'summary-title' },
    h('h2', { id: 'summary-title', text: 'Summary' }),
    h('dl', { class: 'summary', id: 'summary' },
      h('dt', { text: 'Total invoices' }), h('dd', { id: 'summary-total', text: s.total_invoices }),
      h('dt', { text: 'Unpaid' }), h('dd', { id: 'summary-unpaid', text: s.unpaid_count }),
      h('dt', { text: 'Overdue' }), h('dd', { id: 'summary-overdue', text: s.overdue_count }),
      h('dt', { text: 'Total amount unpaid' }), unpaid));
  const list = h('section', { class: 'panel', 'aria-labelledby': 'invoices-title' },
    h('h1', { id: 'invoices-title', text: 'Invoices' }),
    data.invoices.length
      ? h('table', { class: 'invoices', id: 'all-invoices' },
        h('caption', { class: 'visually-hidden', text: 'Every invoice with its current status' }),
        h('thead', {}, h('tr', {},
          ['Invoice', 'Project', 'Issued', 'Due'].map((t) => h('th', { scope: 'col', text: t })),
          h('th', { scope: 'col', class: 'num', text: 'Total' }),
          h('th', { scope: 'col', class: 'num', text: 'Balance' }),
          h('th', { scope: 'col', text: 'Current Status' }))),
        h('tbody', {}, rows))
      : h('p', { class: 'empty', text: 'No invoices yet.' }));
  show('Invoices', h('div', { class: 'layout' }, list, summary));
}

// ---------------------------------------------------------------------------------------
// Wallet: pay a checkout, then follow each invoice's own transaction

const METHODS = [
  ['tok_succeed', 'Test card: approved'],
  ['tok_decline', 'Test card: declined'],
  ['tok_settle_later', 'Test card: approved, settles later'],
];

const PAYMENT_STATUS = {
  submitted: 'Processing',
  settled: 'Paid',
  failed: 'Declined',
  refunded: 'Refunded',
};

function idempotencyKey(checkoutId) {
  const slot = `portico.pay.${checkoutId}`;
  let key = sessionStorage.getItem(slot);
  if (!key) {
    key = crypto.randomUUID();
    sessionStorage.setItem(slot, key);
  }
  return key;
}

async function walletPage(checkoutId) {
  let checkoutView;
  try {
    checkoutView = await api('GET', `/v1/wallet/checkouts/${encodeURIComponent(checkoutId)}`);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 422)) throw error;
    return show('Wallet', h('section', { class: 'card narrow' }, h('h1', { text: 'Payment not found' }),
      h('p', { role: 'alert', text: 'This payment link is not valid for your account.' }),
      h('p', {}, h('a', { href: '/dashboard', 'data-nav': true, text: 'Back to the dashboard' }))));
  }
  const c = checkoutView;
  const numbers = new Map(c.lines.map((l) => [l.invoice_id, l.number]));
  const lines = h('table', { class: 'invoices wallet-lines', id: 'wallet-lines' },
    h('caption', { class: 'visually-hidden', text: 'Invoices being paid' }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Invoice' }), h('th', { scope: 'col', class: 'num', text: 'Amount' }))),
    h('tbody', {}, c.lines.map((l) => h('tr', { 'data-invoice': l.invoice_id },
      h('th', { scope: 'row', text: l.number }),
      h('td', { class: 'num', text: money(l.amount, c.currency, locale()) })))),
    h('tfoot', {}, h('tr', {}, h('th', { scope: 'row', text: 'Total' }),
      h('td', { class: 'num', id: 'wallet-total', text: money(c.total, c.currency, locale()) }))));
  const results = h('section', { class: 'results', id: 'results', 'aria-labelledby': 'results-title', hidden: true },
    h('h2', { id: 'results-title', text: 'Result' }),
    h('p', { class: 'hint', text: 'Each invoice is charged as its own transaction.' }),
    h('ul', { id: 'result-list', 'aria-live': 'polite' }));
  const problem = alertBox();

  let payForm = null;
  if (!c.submission_id) {
    const pay = h('button', { type: 'submit', class: 'primary', id: 'pay', text: `Pay ${money(c.total, c.currency, locale())}` });
    payForm = h('form', { id: 'pay-form' },
      h('fieldset', {},
        h('legend', { text: 'Payment method' }),
        METHODS.map(([token, label], i) => h('div', { class: 'choice' },
          h('input', { type: 'radio', name: 'method', id: `method-${token}`, value: token, checked: i === 0 }),
          h('label', { for: `method-${token}`, text: label })))),
      h('p', { class: 'hint', text: `This checkout expires ${instant(c.expires_at, locale())}.` }),
      problem, pay);
    payForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      say(problem, '');
      pay.disabled = true;
      const token = payForm.querySelector('input[name=method]:checked').value;
      try {
        const submission = await api('POST', `/v1/wallet/checkouts/${encodeURIComponent(c.id)}/submit`, {
          body: { payment_method: { type: 'card', token } },
          idempotencyKey: idempotencyKey(c.id),
        });
        payForm.remove();
        follow(submission, numbers, results);
      } catch (error) {
        pay.disabled = false;
        if (error instanceof ApiError && error.status === 409) {
          const reasons = (error.problem.invoices || []).map((i) => `${numbers.get(i.invoice_id) || i.invoice_id}: ${i.reason}`);
          return say(problem, reasons.length ? `Not paid: ${reasons.join('; ')}.` : capitalise(error.message));
        }
        say(problem, describe(error));
      }
    });
  }
  show('Wallet', h('section', { class: 'card wallet', 'aria-labelledby': 'wallet-title' },
    brandBlock(state.brand),
    h('h1', { id: 'wallet-title', text: 'Wallet' }),
    h('p', { text: c.lines.length === 1 ? 'You are paying 1 invoice.' : `You are paying ${c.lines.length} invoices.` }),
    lines, payForm, results,
    h('p', { class: 'after' },
      h('a', { href: '/dashboard', 'data-nav': true, text: 'Back to the dashboard' }), ' · ',
      h('a', { href: '/invoices', 'data-nav': true, text: 'View invoices' }))));
  if (c.submission_id) {
    const submission = await api('GET', `/v1/wallet/submissions/${encodeURIComponent(c.submission_id)}`);
    follow(submission, numbers, results);
  }
}

function paintResults(submission, numbers, results) {
  results.hidden = false;
  const list = results.querySelector('#result-list');
  list.replaceChildren(...submission.payments.map((p) => h('li', { class: `result ${p.status}`, 'data-invoice': p.invoice_id },
    h('span', { class: 'result-invoice', text: numbers.get(p.invoice_id) || p.invoice_id }),
    h('span', { class: 'result-amount', text: money(p.amount, submission.currency, locale()) }),
    h('span', { class: 'result-status', 'data-status': p.status, text: PAYMENT_STATUS[p.status] || p.status }))));
}

async function follow(submission, numbers, results) {
  paintResults(submission, numbers, results);
  let position = submission.position;
  const deadline = Date.now() + 120000;
  let current = submission;
  while (current.payments.some((p) => p.status === 'submitted') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!results.isConnected) return;
    try {
      const query = position ? `?min_position=${position}` : '';
      current = await api('GET', `/v1/wallet/submissions/${encodeURIComponent(submission.submission_id)}${query}`);
      position = 0;
      paintResults(current, numbers, results);
    } catch {
      // A blip while polling: try again on the next tick.
    }
  }
}

render();
