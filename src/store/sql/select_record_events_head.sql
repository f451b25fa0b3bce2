-- The events of one record: each id column through its own index, materialised before the
-- outer ORDER BY id LIMIT. Written as a plain OR, PostgreSQL without fresh statistics (a
-- partitioned parent is never auto-analysed) walks the primary key in id order and filters
-- every row instead; here the record's rows are found first, whatever the statistics say.
-- The second branch leaves out rows the first already has (crm_id and erp_id both the id).
-- Followed by the binds: crm_id, erp_id, crm_id (see `query_events`).
WITH matched AS MATERIALIZED (
    SELECT * FROM field_events WHERE crm_id =
