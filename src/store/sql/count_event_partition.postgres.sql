-- Blocks late inserts into the partition until the drop commits, then counts it.
LOCK TABLE {partition} IN SHARE MODE;
SELECT count(*) FROM {partition};
