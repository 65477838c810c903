// Checks real answers and events against the published document: each against the very schema
// the document gives for its operation and status (or webhook), with ajv (JSON Schema 2020-12,
// the dialect of OpenAPI 3.1) and ajv-formats.
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export type OpenApiDoc = {
  components: { schemas: Record<string, unknown> };
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  webhooks: Record<string, unknown>;
};

/** What a check needs of an answer: supertest's Response has these. */
export interface Answer {
  status: number;
  body: unknown;
  text?: string;
  /** The media type of the body (supertest's `type`); JSON when absent. */
  type?: string;
}

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

export function contract(doc: OpenApiDoc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  // The whole document as one schema, so that $refs into components resolve.
  ajv.addSchema({ ...doc, $id: 'doc' }, 'doc');
  const errorsOf = (check: ReturnType<Ajv2020['getSchema']>, value: unknown) =>
    check!(value) ? [] : (check!.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);

  /** The document's path template for a concrete path: /v1/offers/7 → /v1/offers/{id}. */
  const templateOf = (path: string): string => {
    const clean = path.split('?')[0];
    const match = doc.paths[clean] ? clean : Object.keys(doc.paths).find((template) => new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(clean));
    if (!match) throw new Error(`${clean} is in no path of the document`);
    return match;
  };

  return {
    /** Problems of an answer against its operation's documented answer; [] when it conforms. */
    conforms(method: string, path: string, res: Answer): string[] {
      const mediaType = res.type || 'application/json';
      const template = templateOf(path);
      const operation = doc.paths[template][method];
      if (!operation) return [`${method.toUpperCase()} ${template} is not in the document`];
      const status = String(res.status);
      if (!operation.responses[status]) return [`${method.toUpperCase()} ${template} answered ${status}, which the document does not list`];
      const check = ajv.getSchema(`doc#/${pointer('paths', template, method, 'responses', status, 'content', mediaType, 'schema')}`);
      if (!check) return res.text ? [`${method.toUpperCase()} ${template} ${status} has a body the document does not describe`] : [];
      return errorsOf(check, mediaType === 'application/json' ? res.body : res.text);
    },
    /** Problems of an event (its whole envelope) against its type's webhook; [] when it conforms. */
    eventProblems(event: { type: string; [field: string]: unknown }): string[] {
      const check = ajv.getSchema(`doc#/${pointer('webhooks', event.type, 'post', 'requestBody', 'content', 'application/json', 'schema')}`);
      return check ? errorsOf(check, event) : [`${event.type} is not a webhook of the document`];
    },
  };
}
