import { EventTypeList, eventTypesJson } from '../representations';
import { resource, route } from '../route';

const eventTypes = eventTypesJson();

export default resource(
  { tag: 'Events', base: '/v1/event-types', description: "What Trackway tells subscribers, as signed webhooks: this document's webhooks give each payload." },
  [
    route({
      method: 'get',
      path: '/v1/event-types',
      summary: 'List event types',
      description: 'Each with an example of its data; the webhooks of this document give their schemas.',
      answer: { status: 200, description: 'Every event type.', schema: EventTypeList },
      handler: async () => eventTypes,
    }),
  ],
);
