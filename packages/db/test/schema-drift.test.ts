// THE schema-drift test. Migrations are hand-written (Prisma's schema engine cannot be
// downloaded here), so nothing but this test stops prisma/migrations from drifting away from
// prisma/schema.prisma. It parses the schema with Prisma's own parser (get_dmmf), applies the
// migrations to a fresh Postgres schema, introspects that schema through pg_catalog and compares
// the two in both directions: tables, columns (exact type, nullability, default), enums (ordered
// labels), primary keys, unique and normal indexes (with partial indexes' predicates, which the DMMF
// leaves out: read from the text), and foreign keys (with referential actions).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { get_dmmf } from '@prisma/prisma-schema-wasm';
import { HISTORY_TABLES } from '@trackway/domain';
import { type TestDatabase, TEST_DATABASE_URL, createTestDatabase } from '@trackway/testing';
import pg from 'pg';

const SCHEMA_PATH = path.resolve(__dirname, '../../../prisma/schema.prisma');
const BOOKKEEPING_TABLE = '_prisma_migrations';
/** Postgres' NAMEDATALEN - 1: longer identifiers are truncated (by Prisma and by Postgres). */
const MAX_IDENTIFIER_LENGTH = 63;

// ---------------------------------------------------------------------------------------------
// The shape of get_dmmf's output (only what this test reads; checked against the real output).

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: 'scalar' | 'enum' | 'object' | 'unsupported';
  type: string;
  isList: boolean;
  isRequired: boolean;
  isId: boolean;
  isUnique: boolean;
  isUpdatedAt: boolean;
  hasDefaultValue: boolean;
  /** A literal (string/number/boolean) or a function such as {name: 'now', args: []}. */
  default?: unknown;
  nativeType?: [string, string[]] | null;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
  relationOnUpdate?: string;
}

interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
}

interface DmmfEnum {
  name: string;
  dbName: string | null;
  values: Array<{ name: string; dbName: string | null }>;
}

interface DmmfIndex {
  model: string;
  type: 'id' | 'normal' | 'unique' | 'fulltext';
  dbName?: string;
  algorithm?: string;
  fields: Array<{ name: string; sortOrder?: 'asc' | 'desc' }>;
}

export interface Datamodel {
  enums: DmmfEnum[];
  models: DmmfModel[];
  indexes: DmmfIndex[];
  /** Partial indexes' predicates (`where: raw("…")`) by index name, as written: read from the text, the DMMF leaves them out. */
  predicates: Map<string, string>;
}

export function parseSchema(text: string): Datamodel {
  const dmmf = JSON.parse(get_dmmf(JSON.stringify({ prismaSchema: [['schema.prisma', text]] })));
  // `@relation(map: ...)` (a custom foreign key name) is not part of the DMMF; refuse rather
  // than compare foreign key names against a default the schema overrides.
  if (/@relation\([^)]*\bmap\s*:/.test(text)) {
    throw new Error('schema-drift: @relation(map: ...) is not supported by this test; teach it how to read the name');
  }
  const datamodel: Datamodel = { ...dmmf.datamodel, predicates: partialIndexPredicates(text) };
  for (const name of datamodel.predicates.keys()) {
    if (!datamodel.indexes.some((index) => index.dbName === name)) throw new Error(`schema-drift: partial index ${name} not found in the DMMF`);
  }
  return datamodel;
}

/** `@@index([...], map: "name", where: raw("predicate"))`, one per line: name → predicate. */
function partialIndexPredicates(text: string): Map<string, string> {
  const predicates = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!/^\s*@@(index|unique)\(/.test(line) || !/\bwhere\s*:/.test(line)) continue;
    const where = /\bwhere\s*:\s*raw\(\s*"((?:[^"\\]|\\.)*)"\s*\)/.exec(line);
    const map = /\bmap\s*:\s*"([^"]+)"/.exec(line);
    if (!where || !map) throw new Error(`schema-drift: a partial index needs map: "…" and where: raw("…") (teach this test other forms): ${line.trim()}`);
    predicates.set(map[1], where[1].replace(/\\(.)/g, '$1'));
  }
  return predicates;
}

// ---------------------------------------------------------------------------------------------
// A normalized description of a Postgres schema, built either from the DMMF (expected) or from
// the database (actual), so both sides go through the same comparison.

interface ColumnInfo {
  /** As Postgres' format_type() prints it, e.g. `character varying(40)`; enums as `enum "Name"`. */
  type: string;
  nullable: boolean;
  /** Normalized: `autoincrement()`, `now()`, a literal (`'active'`, `30`, `true`) or null. */
  default: string | null;
}

export interface SchemaSnapshot {
  tables: Map<string, Map<string, ColumnInfo>>;
  enums: Map<string, string[]>;
  /** Primary keys, unique and normal indexes, foreign keys, each as one readable line. */
  constraints: Set<string>;
}

const quoteList = (columns: string[]) => `(${columns.join(', ')})`;
/** Long default names are truncated to 63 characters; compare only a prefix that is never cut. */
const normalizeName = (name: string) => (name.length >= MAX_IDENTIFIER_LENGTH - 8 ? `${name.slice(0, MAX_IDENTIFIER_LENGTH - 8)}…` : name);

const describeIndex = (kind: 'primary key' | 'unique' | 'index', name: string, table: string, columns: string[], method = 'btree') =>
  `${kind} ${normalizeName(name)} on ${table} ${quoteList(columns)}${method === 'btree' ? '' : ` using ${method}`}`;

const describeForeignKey = (name: string, table: string, columns: string[], refTable: string, refColumns: string[], onDelete: string, onUpdate: string) =>
  `foreign key ${normalizeName(name)} on ${table} ${quoteList(columns)} references ${refTable} ${quoteList(refColumns)} on delete ${onDelete} on update ${onUpdate}`;

// --- expected: from schema.prisma -------------------------------------------------------------

/** Prisma's native type attribute (`@db.X(args)`) → Postgres' format_type() spelling. */
function nativeTypeToPostgres(name: string, args: string[]): string {
  const precision = args.length > 0 ? `(${args.join(',')})` : '';
  switch (name) {
    case 'Text':
      return 'text';
    case 'VarChar':
      return `character varying${precision}`;
    case 'Char':
      return `character${precision || '(1)'}`;
    case 'Uuid':
      return 'uuid';
    case 'Xml':
      return 'xml';
    case 'Inet':
      return 'inet';
    case 'Citext':
      return 'citext';
    case 'Bit':
      return `bit${precision || '(1)'}`;
    case 'VarBit':
      return `bit varying${precision}`;
    case 'Integer':
      return 'integer';
    case 'SmallInt':
      return 'smallint';
    case 'Oid':
      return 'oid';
    case 'BigInt':
      return 'bigint';
    case 'Real':
      return 'real';
    case 'DoublePrecision':
      return 'double precision';
    case 'Decimal':
      return `numeric${precision}`;
    case 'Money':
      return 'money';
    case 'Timestamp':
      return `timestamp${precision} without time zone`;
    case 'Timestamptz':
      return `timestamp${precision} with time zone`;
    case 'Date':
      return 'date';
    case 'Time':
      return `time${precision} without time zone`;
    case 'Timetz':
      return `time${precision} with time zone`;
    case 'Json':
      return 'json';
    case 'JsonB':
      return 'jsonb';
    case 'ByteA':
      return 'bytea';
    case 'Boolean':
      return 'boolean';
    default:
      throw new Error(`schema-drift: native type @db.${name} is not mapped yet; add it to nativeTypeToPostgres`);
  }
}

/** What Prisma's migrations create for a scalar type without `@db.*`. */
const DEFAULT_SCALAR_TYPES: Record<string, string> = {
  String: 'text',
  Int: 'integer',
  BigInt: 'bigint',
  Float: 'double precision',
  Decimal: 'numeric(65,30)',
  Boolean: 'boolean',
  DateTime: 'timestamp(3) without time zone',
  Json: 'jsonb',
  Bytes: 'bytea',
};

const quoteLiteral = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** The database default a field's `@default(...)` produces, normalized like normalizeDefault(). */
function expectedDefault(field: DmmfField, enums: Map<string, DmmfEnum>): string | null {
  if (!field.hasDefaultValue || field.default === undefined) return null;
  const value = field.default;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const fn = value as { name: string; args: unknown[] };
    switch (fn.name) {
      case 'autoincrement':
        return 'autoincrement()';
      case 'now':
        return 'now()';
      case 'dbgenerated':
        return fn.args.length > 0 ? normalizeDefault(String(fn.args[0])) : null;
      // uuid(), cuid(), nanoid(), ulid(): generated by Prisma Client, not by the database.
      default:
        return null;
    }
  }
  if (Array.isArray(value)) {
    const items = value.map((item) =>
      typeof item === 'string' && !['Int', 'BigInt', 'Float', 'Decimal'].includes(field.type) ? quoteLiteral(item) : String(item),
    );
    return `ARRAY[${items.join(', ')}]`;
  }
  if (field.kind === 'enum') {
    const label = enums.get(field.type)?.values.find((v) => v.name === value);
    return quoteLiteral(label?.dbName ?? String(value));
  }
  if (typeof value === 'string') {
    // BigInt defaults arrive as strings but are rendered as numbers by Postgres.
    return field.type === 'BigInt' || field.type === 'Decimal' || field.type === 'Int' || field.type === 'Float' ? value : quoteLiteral(value);
  }
  return String(value);
}

/**
 * `predicates`: each partial index's predicate as Postgres prints it (printPredicates), so that
 * it compares with the database's; by default as schema.prisma writes it.
 */
/** The partitioned tables and their partition key's column (packages/domain/src/history.ts). */
const PARTITIONED = new Map<string, string>(HISTORY_TABLES.map((t) => [t.table, t.column]));

export function expectedSnapshot(datamodel: Datamodel, predicates = datamodel.predicates, partitionedTables = PARTITIONED): SchemaSnapshot {
  const enums = new Map(datamodel.enums.map((e) => [e.name, e]));
  const models = new Map(datamodel.models.map((m) => [m.name, m]));
  const tableName = (model: DmmfModel) => model.dbName ?? model.name;
  const columnName = (model: DmmfModel, fieldName: string) => {
    const field = model.fields.find((f) => f.name === fieldName);
    if (!field) throw new Error(`schema-drift: ${model.name}.${fieldName} not found`);
    return field.dbName ?? field.name;
  };
  const snapshot: SchemaSnapshot = { tables: new Map(), enums: new Map(), constraints: new Set() };

  for (const e of datamodel.enums)
    snapshot.enums.set(
      e.dbName ?? e.name,
      e.values.map((v) => v.dbName ?? v.name),
    );

  for (const model of datamodel.models) {
    const table = tableName(model);
    const columns = new Map<string, ColumnInfo>();
    for (const field of model.fields) {
      if (field.kind === 'object') continue;
      let type: string;
      if (field.kind === 'enum') {
        const e = enums.get(field.type)!;
        type = `enum "${e.dbName ?? e.name}"`;
      } else if (field.kind === 'scalar') {
        type = field.nativeType ? nativeTypeToPostgres(field.nativeType[0], field.nativeType[1]) : DEFAULT_SCALAR_TYPES[field.type];
        if (!type) throw new Error(`schema-drift: scalar type ${field.type} is not mapped yet`);
      } else {
        throw new Error(`schema-drift: field kind ${field.kind} (${model.name}.${field.name}) is not supported yet`);
      }
      // Prisma creates scalar lists as nullable columns (`"tags" TEXT[]`) although the field is
      // required in the DMMF.
      if (field.isList) type += '[]';
      columns.set(field.dbName ?? field.name, { type, nullable: field.isList || !field.isRequired, default: expectedDefault(field, enums) });
    }
    snapshot.tables.set(table, columns);

    // Prisma cannot say that a table is partitioned: HISTORY_TABLES does (its partitions are the
    // database's own business and are left out of the comparison).
    const partitioned = partitionedTables.get(table);
    if (partitioned) snapshot.constraints.add(`partitioned by range on ${table} (${partitioned})`);

    // Foreign keys: the relation field that holds `fields`/`references` owns the constraint. A
    // partitioned table's relations have none (schema.prisma says why): none is expected.
    for (const field of model.fields) {
      if (field.kind !== 'object' || !field.relationFromFields?.length || partitioned) continue;
      const target = models.get(field.type)!;
      const columnsFrom = field.relationFromFields.map((f) => columnName(model, f));
      const columnsTo = field.relationToFields!.map((f) => columnName(target, f));
      // Prisma's defaults: onDelete SetNull for optional relations, Restrict for required ones;
      // onUpdate Cascade. (https://www.prisma.io/docs/orm/prisma-schema/data-model/relations/referential-actions)
      const onDelete = field.relationOnDelete ?? (field.isRequired ? 'Restrict' : 'SetNull');
      const onUpdate = field.relationOnUpdate ?? 'Cascade';
      snapshot.constraints.add(
        describeForeignKey(
          `${table}_${columnsFrom.join('_')}_fkey`,
          table,
          columnsFrom,
          tableName(target),
          columnsTo,
          referentialAction(onDelete),
          referentialAction(onUpdate),
        ),
      );
    }
  }

  for (const index of datamodel.indexes) {
    const model = models.get(index.model)!;
    const table = tableName(model);
    const columns = index.fields.map((f) => columnName(model, f.name) + (f.sortOrder === 'desc' ? ' DESC' : ''));
    const bare = index.fields.map((f) => columnName(model, f.name));
    const method = (index.algorithm ?? 'BTree').toLowerCase();
    const predicate = index.dbName ? predicates.get(index.dbName) : undefined;
    const where = predicate === undefined ? '' : ` where ${predicate}`;
    switch (index.type) {
      case 'id':
        snapshot.constraints.add(describeIndex('primary key', index.dbName ?? `${table}_pkey`, table, columns));
        break;
      case 'unique':
        snapshot.constraints.add(describeIndex('unique', index.dbName ?? `${table}_${bare.join('_')}_key`, table, columns, method) + where);
        break;
      case 'normal':
        snapshot.constraints.add(describeIndex('index', index.dbName ?? `${table}_${bare.join('_')}_idx`, table, columns, method) + where);
        break;
      default:
        throw new Error(`schema-drift: index type ${index.type} is not supported on PostgreSQL`);
    }
  }
  return snapshot;
}

/** Prisma's referential action names → Postgres' spelling. */
function referentialAction(action: string): string {
  const actions: Record<string, string> = { Cascade: 'CASCADE', Restrict: 'RESTRICT', NoAction: 'NO ACTION', SetNull: 'SET NULL', SetDefault: 'SET DEFAULT' };
  if (!actions[action]) throw new Error(`schema-drift: unknown referential action ${action}`);
  return actions[action];
}

// --- actual: from the database ------------------------------------------------------------------

/**
 * Normalizes a column default as pg_get_expr() prints it: `nextval('t.x_id_seq'::regclass)` →
 * `autoincrement()`, `CURRENT_TIMESTAMP` → `now()`, `'active'::"EntityStatus"` → `'active'`,
 * `'{}'::jsonb` → `'{}'`, `30` → `30`.
 */
export function normalizeDefault(expression: string | null): string | null {
  if (expression === null) return null;
  const text = expression.trim();
  if (/^nextval\('[^']+'::regclass\)$/.test(text)) return 'autoincrement()';
  if (/^(CURRENT_TIMESTAMP|now\(\))$/i.test(text)) return 'now()';
  const array = /^ARRAY\[(.*)\](::[\w" .()[\],]+)?$/s.exec(text);
  if (array) {
    // ARRAY['a'::text, 'b'::text] → ARRAY['a', 'b']; ARRAY[]::text[] → ARRAY[]
    const items = array[1].match(/'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false/g) ?? [];
    return `ARRAY[${items.join(', ')}]`;
  }
  const literal = /^'((?:[^']|'')*)'(::[\w" .()[\],]+)*$/.exec(text);
  if (literal) {
    // Numbers too large for an integer literal come back quoted: '5000000000'::bigint.
    const numericCast = /^::(bigint|integer|smallint|numeric|real|double precision)\b/.test(literal[2] ?? '');
    return numericCast && /^-?\d+(\.\d+)?$/.test(literal[1]) ? literal[1] : `'${literal[1]}'`;
  }
  const number = /^\(?(-?\d+(?:\.\d+)?)\)?(::[\w" .()[\],]+)*$/.exec(text);
  if (number) return number[1];
  return text;
}

export async function introspect(client: pg.Client, schema: string): Promise<SchemaSnapshot> {
  const snapshot: SchemaSnapshot = { tables: new Map(), enums: new Map(), constraints: new Set() };

  const tables = await client.query<{ table: string }>(
    `SELECT c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $2`,
    [schema, BOOKKEEPING_TABLE],
  );
  for (const { table } of tables.rows) snapshot.tables.set(table, new Map());

  // format_type() spells types exactly (varchar length, numeric precision, timestamp precision);
  // enums are printed as `enum "Name"` so that a type from another schema shows its schema.
  const columns = await client.query<{
    table: string;
    column: string;
    type: string;
    nullable: boolean;
    default: string | null;
    identity: string;
    generated: string;
  }>(
    `SELECT c.relname AS table, a.attname AS column,
            CASE WHEN t.typtype = 'e' THEN 'enum "' || CASE WHEN tn.nspname = $1 THEN '' ELSE tn.nspname || '.' END || t.typname || '"'
                 WHEN et.typtype = 'e' THEN 'enum "' || CASE WHEN etn.nspname = $1 THEN '' ELSE etn.nspname || '.' END || et.typname || '"[]'
                 ELSE format_type(a.atttypid, a.atttypmod) END AS type,
            NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default,
            a.attidentity AS identity, a.attgenerated AS generated
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_namespace tn ON tn.oid = t.typnamespace
       LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
       LEFT JOIN pg_namespace etn ON etn.oid = et.typnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> $2 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY c.relname, a.attnum`,
    [schema, BOOKKEEPING_TABLE],
  );
  for (const row of columns.rows) {
    let defaultValue = normalizeDefault(row.default);
    if (row.identity) defaultValue = `identity (${row.identity === 'a' ? 'always' : 'by default'})`;
    if (row.generated) defaultValue = `generated always as ${row.default}`;
    snapshot.tables.get(row.table)!.set(row.column, { type: row.type, nullable: row.nullable, default: defaultValue });
  }

  const enums = await client.query<{ name: string; labels: string[] }>(
    `SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
      WHERE n.nspname = $1 GROUP BY t.typname`,
    [schema],
  );
  for (const row of enums.rows) snapshot.enums.set(row.name, row.labels);

  // Every index, whether it backs a constraint or not (Prisma writes unique keys as UNIQUE INDEX;
  // a hand-written UNIQUE constraint has the same index and so compares equal).
  const indexes = await client.query<{
    name: string;
    table: string;
    primary: boolean;
    unique: boolean;
    method: string;
    columns: string[];
    predicate: string | null;
  }>(
    `SELECT i.relname AS name, c.relname AS table, x.indisprimary AS primary, x.indisunique AS unique, am.amname AS method,
            (SELECT array_agg(pg_get_indexdef(x.indexrelid, k, false)
                    || CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END ORDER BY k)
               FROM generate_series(1, x.indnkeyatts) AS k)::text[] AS columns,
            pg_get_expr(x.indpred, x.indrelid) AS predicate
       FROM pg_index x
       JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_class c ON c.oid = x.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_am am ON am.oid = i.relam
      WHERE n.nspname = $1 AND NOT c.relispartition AND c.relname <> $2`,
    [schema, BOOKKEEPING_TABLE],
  );
  for (const row of indexes.rows) {
    const kind = row.primary ? 'primary key' : row.unique ? 'unique' : 'index';
    // Quoted identifiers (mixed case) come back quoted; unquote them to compare with the DMMF.
    const cols = row.columns.map((c) => c.replace(/^"((?:[^"]|"")*)"/, (_, name: string) => name.replace(/""/g, '"')));
    snapshot.constraints.add(describeIndex(kind, row.name, row.table, cols, row.method) + (row.predicate ? ` where ${row.predicate}` : ''));
  }

  const actions: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };
  const foreignKeys = await client.query<{
    name: string;
    table: string;
    columns: string[];
    ref_table: string;
    ref_columns: string[];
    on_delete: string;
    on_update: string;
  }>(
    `SELECT con.conname AS name, c.relname AS table, rc.relname AS ref_table,
            (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)::text[] AS columns,
            (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)::text[] AS ref_columns,
            con.confdeltype AS on_delete, con.confupdtype AS on_update
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class rc ON rc.oid = con.confrelid
      WHERE n.nspname = $1 AND con.contype = 'f' AND NOT c.relispartition AND c.relname <> $2`,
    [schema, BOOKKEEPING_TABLE],
  );
  for (const fk of foreignKeys.rows) {
    snapshot.constraints.add(describeForeignKey(fk.name, fk.table, fk.columns, fk.ref_table, fk.ref_columns, actions[fk.on_delete], actions[fk.on_update]));
  }
  const partitioned = await client.query<{ table: string; columns: string[]; strategy: string }>(
    `SELECT c.relname AS table, pt.partstrat AS strategy,
            (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum)::text[] AS columns
       FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1`,
    [schema],
  );
  for (const p of partitioned.rows)
    snapshot.constraints.add(`partitioned by ${p.strategy === 'r' ? 'range' : p.strategy === 'l' ? 'list' : 'hash'} on ${p.table} (${p.columns.join(', ')})`);
  return snapshot;
}

// --- the comparison -----------------------------------------------------------------------------

const show = (value: string | null) => (value === null ? 'none' : value);

/** Every difference between schema.prisma (expected) and the database (actual), readable, sorted. */
export function diffSnapshots(expected: SchemaSnapshot, actual: SchemaSnapshot): string[] {
  const differences: string[] = [];
  for (const [table, columns] of expected.tables) {
    const actualColumns = actual.tables.get(table);
    if (!actualColumns) {
      differences.push(`table ${table}: in schema.prisma but missing from the database`);
      continue;
    }
    for (const [column, want] of columns) {
      const got = actualColumns.get(column);
      if (!got) {
        differences.push(`column ${table}.${column}: in schema.prisma but missing from the database`);
        continue;
      }
      if (got.type !== want.type) differences.push(`column ${table}.${column}: type is ${got.type}, schema.prisma says ${want.type}`);
      if (got.nullable !== want.nullable) {
        differences.push(`column ${table}.${column}: is ${got.nullable ? 'NULL' : 'NOT NULL'}, schema.prisma says ${want.nullable ? 'NULL' : 'NOT NULL'}`);
      }
      if (got.default !== want.default)
        differences.push(`column ${table}.${column}: default is ${show(got.default)}, schema.prisma says ${show(want.default)}`);
    }
    for (const column of actualColumns.keys()) {
      if (!columns.has(column)) differences.push(`column ${table}.${column}: in the database but not in schema.prisma`);
    }
  }
  for (const table of actual.tables.keys()) {
    if (!expected.tables.has(table)) differences.push(`table ${table}: in the database but not in schema.prisma`);
  }

  for (const [name, labels] of expected.enums) {
    const got = actual.enums.get(name);
    if (!got) differences.push(`enum ${name}: in schema.prisma but missing from the database`);
    else if (got.join(',') !== labels.join(',')) differences.push(`enum ${name}: labels are [${got.join(', ')}], schema.prisma says [${labels.join(', ')}]`);
  }
  for (const name of actual.enums.keys()) {
    if (!expected.enums.has(name)) differences.push(`enum ${name}: in the database but not in schema.prisma`);
  }

  // The keys, indexes and foreign keys of a table reported missing or extra as a whole would
  // only repeat that line.
  const tableOf = (constraint: string) => / on (\S+) \(/.exec(constraint)![1];
  const onBothSides = (constraint: string) => expected.tables.has(tableOf(constraint)) && actual.tables.has(tableOf(constraint));
  for (const constraint of expected.constraints) {
    if (!actual.constraints.has(constraint) && onBothSides(constraint)) differences.push(`missing from the database: ${constraint}`);
  }
  for (const constraint of actual.constraints) {
    if (!expected.constraints.has(constraint) && onBothSides(constraint)) differences.push(`not in schema.prisma: ${constraint}`);
  }
  return differences.sort();
}

/** Compares the migrated database schema `schema` with the data model `datamodel`. */
export async function schemaDrift(datamodel: Datamodel, schema: string, partitioned = PARTITIONED): Promise<string[]> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return diffSnapshots(expectedSnapshot(datamodel, await printPredicates(client, datamodel, schema), partitioned), await introspect(client, schema));
  } finally {
    await client.end();
  }
}

/**
 * Each partial index's predicate as Postgres prints it for an index on its table in `schema` (built
 * and rolled back): written as SQL, it compares with pg_get_expr's output only once Postgres has
 * parsed it (casts, parentheses, the enum type's schema). Left as written when its table or a
 * column is missing (that is reported on its own).
 */
async function printPredicates(client: pg.Client, datamodel: Datamodel, schema: string): Promise<Map<string, string>> {
  const printed = new Map<string, string>();
  for (const [name, where] of datamodel.predicates) {
    const index = datamodel.indexes.find((i) => i.dbName === name)!;
    const model = datamodel.models.find((m) => m.name === index.model)!;
    const columns = index.fields.map((f) => `"${model.fields.find((field) => field.name === f.name)?.dbName ?? f.name}"`);
    await client.query('BEGIN');
    try {
      await client.query(`CREATE INDEX drift_predicate ON "${schema}"."${model.dbName ?? model.name}" (${columns.join(', ')}) WHERE ${where}`);
      const { rows } = await client.query<{ predicate: string }>(
        'SELECT pg_get_expr(indpred, indrelid) AS predicate FROM pg_index WHERE indexrelid = $1::regclass',
        [`"${schema}".drift_predicate`],
      );
      printed.set(name, rows[0].predicate);
    } catch {
      printed.set(name, where);
    } finally {
      await client.query('ROLLBACK');
    }
  }
  return printed;
}

async function execute(statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------

const schemaText = readFileSync(SCHEMA_PATH, 'utf8');
const datamodel = parseSchema(schemaText);
const databases: TestDatabase[] = [];

afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

describe('prisma/migrations vs prisma/schema.prisma', () => {
  let clean: TestDatabase;
  let cleanDiff: string[];
  beforeAll(async () => {
    clean = await freshDatabase();
    cleanDiff = await schemaDrift(datamodel, clean.schema);
  });

  it('reads the whole data model (sanity check of the parsing)', () => {
    const expected = expectedSnapshot(datamodel);
    expect(expected.tables.size).toBe(datamodel.models.length);
    expect(expected.enums.size).toBe(datamodel.enums.length);
    expect([...expected.tables.keys()]).toEqual(expect.arrayContaining(['advertisers', 'conversions', 'fraud_flags', 'outbox_events']));
    expect(expected.tables.get('conversions')!.get('order_id')).toEqual({ type: 'character varying(255)', nullable: false, default: null });
    expect(expected.tables.get('offers')!.get('id')).toEqual({ type: 'integer', nullable: false, default: 'autoincrement()' });
    expect(expected.tables.get('offers')!.get('status')).toEqual({ type: 'enum "EntityStatus"', nullable: false, default: "'active'" });
    expect(expected.tables.get('offers')!.get('payout_amount')).toEqual({ type: 'numeric(18,4)', nullable: true, default: null });
    expect(expected.tables.get('offers')!.get('created_at')).toEqual({ type: 'timestamp(3) with time zone', nullable: false, default: 'now()' });
    expect(expected.tables.get('postbacks')!.get('params')).toEqual({ type: 'jsonb', nullable: false, default: null });
    expect(expected.constraints).toContain('unique conversions_advertiser_id_order_id_event_key on conversions (advertiser_id, order_id, event)');
    expect(expected.constraints).toContain('index conversions_status_id_idx on conversions (status, id)');
    expect(expected.constraints).toContain('partitioned by range on deliveries (id)');
  });

  it('the migrated database matches schema.prisma exactly (no drift in either direction)', () => {
    // Each line is one difference; fix the migrations (with a new migration folder) or the schema.
    expect(cleanDiff).toEqual([]);
  });

  describe('self-check: the comparison does catch drift', () => {
    let drifted: TestDatabase;
    beforeAll(async () => {
      drifted = await freshDatabase();
    });

    // Reported on top of whatever the clean database reports, so these checks stay meaningful
    // (and green) even while the test above is red.
    const onTopOfClean = (lines: string[]) => [...cleanDiff, ...lines].sort();

    it('reports a changed column type and a dropped index, and nothing else', async () => {
      await execute([
        `ALTER TABLE "${drifted.schema}".conversions ALTER COLUMN order_id TYPE text`,
        `DROP INDEX "${drifted.schema}".conversions_status_id_idx`,
      ]);
      expect(await schemaDrift(datamodel, drifted.schema)).toEqual(
        onTopOfClean([
          'column conversions.order_id: type is text, schema.prisma says character varying(255)',
          'missing from the database: index conversions_status_id_idx on conversions (status, id)',
        ]),
      );
    });

    it('reports every other kind of drift, in both directions', async () => {
      const s = `"${drifted.schema}"`;
      await execute([
        `ALTER TABLE ${s}.clicks ALTER COLUMN sub1 SET NOT NULL`,
        `ALTER TABLE ${s}.postbacks ALTER COLUMN reason TYPE varchar(65)`,
        `ALTER TABLE ${s}.offers ALTER COLUMN attribution_window_days SET DEFAULT 31`,
        `ALTER TABLE ${s}.outbox_events ALTER COLUMN created_at DROP DEFAULT`,
        `ALTER TABLE ${s}.outbox_events ADD COLUMN attempts integer`,
        `ALTER TABLE ${s}.fraud_flags DROP COLUMN rule`,
        `CREATE TABLE ${s}.stray (id integer PRIMARY KEY) PARTITION BY RANGE (id)`,
        // Its partition is not a table of its own in the report.
        `CREATE TABLE ${s}.stray_1 PARTITION OF ${s}.stray FOR VALUES FROM (1) TO (10)`,
        `ALTER TYPE ${s}."PayoutType" ADD VALUE 'tiered'`,
        `CREATE TYPE ${s}."Orphan" AS ENUM ('x')`,
        `CREATE INDEX postbacks_status_idx ON ${s}.postbacks (status)`,
        `DROP INDEX ${s}.commissions_conversion_id_key`,
        `DROP INDEX ${s}.clicks_offer_id_created_at_idx`,
        `CREATE INDEX clicks_offer_id_created_at_idx ON ${s}.clicks (created_at, offer_id)`,
        `ALTER TABLE ${s}.offers DROP CONSTRAINT offers_advertiser_id_fkey`,
        `ALTER TABLE ${s}.commissions DROP CONSTRAINT commissions_conversion_id_fkey`,
        `ALTER TABLE ${s}.commissions ADD CONSTRAINT commissions_conversion_id_fkey FOREIGN KEY (conversion_id) REFERENCES ${s}.conversions (id) ON DELETE CASCADE ON UPDATE CASCADE`,
        `DROP INDEX ${s}.commissions_payable_idx`,
        `CREATE INDEX commissions_payable_idx ON ${s}.commissions (affiliate_id, currency, id) WHERE payout_id IS NULL`,
      ]);
      expect(await schemaDrift(datamodel, drifted.schema)).toEqual(
        onTopOfClean([
          'column conversions.order_id: type is text, schema.prisma says character varying(255)',
          'missing from the database: index conversions_status_id_idx on conversions (status, id)',
          'column clicks.sub1: is NOT NULL, schema.prisma says NULL',
          'column postbacks.reason: type is character varying(65), schema.prisma says character varying(64)',
          'column offers.attribution_window_days: default is 31, schema.prisma says 30',
          'column outbox_events.created_at: default is none, schema.prisma says now()',
          'column outbox_events.attempts: in the database but not in schema.prisma',
          'column fraud_flags.rule: in schema.prisma but missing from the database',
          'table stray: in the database but not in schema.prisma',
          'enum PayoutType: labels are [fixed, percent, tiered], schema.prisma says [fixed, percent]',
          'enum Orphan: in the database but not in schema.prisma',
          'not in schema.prisma: index postbacks_status_idx on postbacks (status)',
          'missing from the database: unique commissions_conversion_id_key on commissions (conversion_id)',
          'missing from the database: index clicks_offer_id_created_at_idx on clicks (offer_id, created_at)',
          'not in schema.prisma: index clicks_offer_id_created_at_idx on clicks (created_at, offer_id)',
          'missing from the database: foreign key offers_advertiser_id_fkey on offers (advertiser_id) references advertisers (id) on delete RESTRICT on update CASCADE',
          'missing from the database: foreign key commissions_conversion_id_fkey on commissions (conversion_id) references conversions (id) on delete RESTRICT on update CASCADE',
          'not in schema.prisma: foreign key commissions_conversion_id_fkey on commissions (conversion_id) references conversions (id) on delete CASCADE on update CASCADE',
          `missing from the database: index commissions_payable_idx on commissions (affiliate_id, currency, id) where ((status = 'approved'::${drifted.schema}."CommissionStatus") AND (payout_id IS NULL))`,
          'not in schema.prisma: index commissions_payable_idx on commissions (affiliate_id, currency, id) where (payout_id IS NULL)',
        ]),
      );
    });

    it('reports a table that is not partitioned as HISTORY_TABLES says, or partitioned by another key', async () => {
      const expected = new Map([...PARTITIONED, ['advertisers', 'id'], ['clicks', 'id']]);
      expect(await schemaDrift(datamodel, clean.schema, expected)).toEqual(
        onTopOfClean([
          'missing from the database: partitioned by range on advertisers (id)',
          'missing from the database: partitioned by range on clicks (id)',
          'not in schema.prisma: partitioned by range on clicks (created_at)',
        ]),
      );
    });

    it('reports drift on the schema side too (a model, field and enum the migrations lack)', async () => {
      const edited = parseSchema(
        schemaText
          .replace(/(model OutboxEvent \{\n)/, '$1  attempts    Int       @default(0)\n')
          .replace(/(enum PayoutType \{\n)/, '$1  tiered\n')
          .concat('\nmodel Ghost {\n  id Int @id\n  @@map("ghosts")\n}\n\nenum Mood {\n  calm\n}\n'),
      );
      expect(await schemaDrift(edited, clean.schema)).toEqual(
        onTopOfClean([
          'column outbox_events.attempts: in schema.prisma but missing from the database',
          'enum PayoutType: labels are [fixed, percent], schema.prisma says [tiered, fixed, percent]',
          'table ghosts: in schema.prisma but missing from the database',
          'enum Mood: in schema.prisma but missing from the database',
        ]),
      );
    });
  });
});

describe('normalizeDefault', () => {
  it.each([
    ["nextval('t_abc.advertisers_id_seq'::regclass)", 'autoincrement()'],
    ["nextval('advertisers_id_seq'::regclass)", 'autoincrement()'],
    ['CURRENT_TIMESTAMP', 'now()'],
    ['now()', 'now()'],
    [`'active'::"EntityStatus"`, "'active'"],
    [`'active'::t_abc."EntityStatus"`, "'active'"],
    ["'{}'::jsonb", "'{}'"],
    ["'it''s'::character varying", "'it''s'"],
    ['30', '30'],
    ["'5000000000'::bigint", '5000000000'],
    ["'1.5'::numeric", '1.5'],
    ['(-1.5)', '-1.5'],
    ['true', 'true'],
    ['ARRAY[]::text[]', 'ARRAY[]'],
    ["ARRAY['a'::text, 'b''c'::text]", "ARRAY['a', 'b''c']"],
    ['ARRAY[1, 2]', 'ARRAY[1, 2]'],
    [null, null],
  ])('%s → %s', (input, output) => {
    expect(normalizeDefault(input)).toBe(output);
  });
});
