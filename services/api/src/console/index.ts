import { HttpError, errorReply, requestIdOf } from '@trackway/http';
import express, { type Request, type Response, Router } from 'express';
import { type AdminSession, type AdminSessions, CONSOLE_PATH } from '../admin-sessions';
import type { ApiDeps } from '../deps';
import { writeReportCsv } from '../reporting';
import { ids } from '../representations';
import { reviewConversion } from '../resources/conversions';
import { retryDelivery } from '../resources/deliveries';
import { consoleAssets } from './assets';
import { endpointsBody } from './endpoints';
import { type Html, html } from './html';
import { type PageContext, type PageName, page, problems, rangeForm } from './layout';
import { overviewBody } from './overview';
import { type ConsoleQuery, consoleQuery, formValues } from './params';
import { reportBy, reportsBody } from './reports';
import { reviewBody } from './review';

/*
 * The web console (docs/console.md): server-rendered pages behind the admin sign-in, under the
 * UI Content-Security-Policy (scripts only from this server; the chart's data is a JSON block,
 * which CSP does not run). Every page works without JavaScript except the chart. Numbers come from
 * the report API's own functions; approve and replay call the API routes' own functions.
 */

const DONE: Record<string, (id: string) => string> = {
  approved: (id) => `Conversion ${id} approved.`,
  rejected: (id) => `Conversion ${id} rejected.`,
  replayed: (id) => `Delivery ${id} queued again.`,
};
/** What a refused form means, by the error's code (the page says it in its own words, never a text from the URL). */
const REFUSED: Record<string, string> = {
  invalid_transition: 'That conversion cannot change that way any more (was it reviewed meanwhile?).',
  not_found: 'That record no longer exists.',
  endpoint_disabled: 'Enable the endpoint before replaying its deliveries.',
  delivery_pending: 'That delivery is pending already; it will be attempted on its schedule.',
  unavailable: 'A store Trackway needs cannot be reached right now; try again shortly.',
  invalid_request: 'The form was not one this page sends.',
};
const ID = /^[a-z]{2,4}_[0-9A-Z]{26}$/;

/** The message after a form, from the redirect's query (flash=approved&id=…, or error=<code>&id=…). */
function messageOf(query: Request['query']): { kind: 'ok' | 'error'; text: string } | null {
  const id = typeof query.id === 'string' && ID.test(query.id) ? query.id : '';
  if (typeof query.flash === 'string' && Object.hasOwn(DONE, query.flash)) return { kind: 'ok', text: DONE[query.flash](id) };
  if (typeof query.error === 'string')
    return { kind: 'error', text: Object.hasOwn(REFUSED, query.error) ? REFUSED[query.error] : 'That did not work; try again.' };
  return null;
}

export function consoleRouter(deps: ApiDeps, sessions: AdminSessions): Router {
  const assets = consoleAssets();
  const router = Router();
  // Library code and the console's own script and styles: nothing secret, served without a session.
  router.use(assets.router);
  router.use(CONSOLE_PATH, sessions.requireSession('html'));

  const contextOf = (res: Response): PageContext => ({ assets: assets.url, csrf: sessions.csrfToken(res.locals.adminSession as AdminSession) });

  /** A page: `build` gives its body (and status); a client's error (a 400, a 503) is shown on the page, never a 500. */
  const pageRoute =
    (name: PageName, title: string, build: (req: Request, context: PageContext) => Promise<{ body: Html; status?: number; chart?: boolean }>) =>
    async (req: Request, res: Response) => {
      const context = contextOf(res);
      const message = messageOf(req.query);
      let built: { body: Html; status?: number; chart?: boolean };
      try {
        built = await build(req, context);
      } catch (error) {
        const reply = errorReply(error, requestIdOf(res));
        if (reply.unexpected) throw error; // logged by the app's error handler
        if (reply.headers) res.set(reply.headers);
        built = { status: reply.status, body: problems(reply.body.error.message, reply.body.error.fields) };
      }
      res
        .status(built.status ?? 200)
        .type('html')
        .send(page(context, { name, title, body: built.body, message, chart: built.chart }));
    };

  /** A range page: its query (parsed by `parse`) and body, or its 400: the form again, with what was wrong. */
  const ranged = async (req: Request, action: string, parse: () => ConsoleQuery, build: (q: ConsoleQuery) => Promise<Html>, hidden = {}) => {
    let parsed: ConsoleQuery;
    try {
      parsed = parse();
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 400) throw error;
      return { status: 400, body: html`${rangeForm(action, formValues(req.query), hidden)}${problems(error.message, error.fields)}` };
    }
    return { body: html`${rangeForm(action, parsed.form, hidden)}${await build(parsed)}` };
  };

  router.get(
    CONSOLE_PATH,
    pageRoute('overview', 'Overview', async (req) => {
      const built = await ranged(
        req,
        CONSOLE_PATH,
        () => consoleQuery(req.query, ['day']),
        ({ query, form }) => overviewBody(deps, query, form),
      );
      // uPlot and console.js load only where there is a chart to draw.
      return { ...built, chart: built.status === undefined };
    }),
  );

  const reportsPage = pageRoute('reports', 'Reports', (req) =>
    ranged(
      req,
      `${CONSOLE_PATH}/reports`,
      () => consoleQuery(req.query, [reportBy(req.query.by)], ['by']),
      ({ query, form }) => reportsBody(deps, query, form, reportBy(req.query.by)),
      { by: typeof req.query.by === 'string' ? req.query.by : undefined },
    ),
  );
  router.get(`${CONSOLE_PATH}/reports`, reportsPage);

  // Every row as CSV, streamed by the report API's own writer (GET /v1/reports?format=csv).
  router.get(`${CONSOLE_PATH}/reports.csv`, async (req, res) => {
    let query: ConsoleQuery['query'];
    try {
      query = consoleQuery(req.query, [reportBy(req.query.by)], ['by']).query;
    } catch (error) {
      // The reports page says what was wrong, the form beside it.
      if (error instanceof HttpError && error.status === 400) return reportsPage(req, res);
      throw error;
    }
    await writeReportCsv(deps, query, res);
  });

  router.get(
    `${CONSOLE_PATH}/review`,
    pageRoute('review', 'Held for review', async (_req, context) => ({ body: await reviewBody(deps, context) })),
  );

  router.get(
    `${CONSOLE_PATH}/endpoints`,
    pageRoute('endpoints', 'Webhook endpoints and partner postbacks', async (_req, context) => ({ body: await endpointsBody(deps, context) })),
  );

  // Forms: urlencoded, small, with the session's CSRF token (SameSite=Strict already keeps other sites' posts cookieless).
  const form = [express.urlencoded({ extended: false, limit: '16kb' }), sessions.requireCsrf];

  /** Runs a form's action, then sends the browser back to `back` (303) with what happened. */
  const act = async (res: Response, back: string, id: string, done: string, action: () => Promise<unknown>) => {
    const shown = ID.test(id) ? `&id=${id}` : '';
    try {
      await action();
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      res.redirect(303, `${back}?error=${encodeURIComponent(error.code)}${shown}`);
      return;
    }
    res.redirect(303, `${back}?flash=${done}${shown}`);
  };

  router.post(`${CONSOLE_PATH}/review/:id`, ...form, async (req, res) => {
    const { id } = req.params as { id: string };
    const status = req.body?.status;
    await act(res, `${CONSOLE_PATH}/review`, id, String(status), async () => {
      if (status !== 'approved' && status !== 'rejected') throw new HttpError(400, 'invalid_request', 'status must be approved or rejected.');
      if (!ids.conversion.safeParse(id).success) throw new HttpError(404, 'not_found', 'Conversion not found.');
      await reviewConversion(deps, id, status);
    });
  });

  router.post(`${CONSOLE_PATH}/deliveries/:id/replay`, ...form, async (req, res) => {
    const { id } = req.params as { id: string };
    await act(res, `${CONSOLE_PATH}/endpoints`, id, 'replayed', async () => {
      if (!ids.delivery.safeParse(id).success) throw new HttpError(404, 'not_found', 'Delivery not found.');
      await retryDelivery(deps, id);
    });
  });

  return router;
}
