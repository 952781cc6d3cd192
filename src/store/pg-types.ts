/**
 * How the engine's `pg` connections turn column values into JS values. The parsers are given to
 * each pool and client the engine makes (pg's per-client `types` option), never set on the global
 * `pg.types`, so an application that embeds the engine keeps pg's defaults for its own clients.
 */
import pg from 'pg';

/** The type oid of int8 (`pg.types.builtins.INT8`). */
const INT8_OID: number = pg.types.builtins.INT8;

// int8 (count(*), bigserial ids) as JS numbers: ids stay far below 2^53.
const parseInt8 = (value: string): number => Number(value);

/** The type parsers of every connection the engine opens: int8 as a number, else pg's defaults. */
export const ENGINE_PG_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : (pg.types.getTypeParser(oid, format) as (
          value: string,
        ) => unknown)) as pg.CustomTypesConfig['getTypeParser'],
};
