-- Delivery-log indexes of the query API (issue 4).
--
-- Sorting by response_code pages with a keyset cursor (response_code, attempted_at, id), and a
-- row comparison cannot step over NULLs (an attempt that got no response). The log therefore
-- sorts by COALESCE(response_code, 0): "no response" ranks below every real status. This
-- expression index serves that sort and the `response_code = X` filter (written as
-- COALESCE(response_code, 0) = X, the same rows for X in 100..599), so it replaces
-- attempts_code_idx and the number of indexes the dispatcher maintains on insert stays the same.
DROP INDEX IF EXISTS attempts_code_idx;
CREATE INDEX IF NOT EXISTS attempts_code_sort_idx ON attempts ((COALESCE(response_code, 0)), attempted_at, id);
