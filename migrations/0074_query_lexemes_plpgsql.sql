-- imp_kb_query_lexemes runs once per question. As a SQL function that cannot be inlined (it
-- has a FROM clause), Postgres parsed and planned its body on every call; PL/pgSQL keeps the
-- expression's plan for the session. Same result: the lexemes of the folded query under the
-- three configurations, as the chunks' full-text columns have them.
CREATE OR REPLACE FUNCTION imp_kb_query_lexemes(q text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
AS $$
DECLARE
    f text := imp_kb_fold(q);
BEGIN
    RETURN json_build_array(tsvector_to_array(to_tsvector('simple'::regconfig, f)),
                            tsvector_to_array(to_tsvector('russian'::regconfig, f)),
                            tsvector_to_array(to_tsvector('english'::regconfig, f)))::text;
END
$$;
