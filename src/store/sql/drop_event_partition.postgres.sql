-- {partition} is a name read from the catalogue and checked against field_events_yYYYYmMM.
ALTER TABLE field_events DETACH PARTITION {partition};
DROP TABLE {partition};
