DELETE FROM record_states;
