-- Up Migration

-- Every recovery drains cache_invalidations oldest first, 500 rows a statement, and every instance does it each
-- second while the table is not empty: without an index each batch read and sorted the whole table (≈ 0.1 s at
-- 300,000 rows, a fleet's long Redis outage). Rows exist only while Redis is distrusted: the index costs nothing else.
CREATE INDEX cache_invalidations_created_idx ON cache_invalidations (created_at);

-- Down Migration
DROP INDEX cache_invalidations_created_idx;
