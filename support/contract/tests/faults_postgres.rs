//! PostgreSQL faults against our pool (see `pool_contract::faults`).

pool_contract::fault_tests!(
    restart_fast => "pg-restart-fast",
    restart_immediate => "pg-restart-immediate",
    kill9_and_start => "pg-kill9",
    terminate_sessions_while_idle => "pg-terminate-idle",
    terminate_sessions_under_load => "pg-terminate-busy",
    freeze => "pg-freeze",
    max_connections_reached => "pg-max-connections",
    standby_answering_57p03 => "pg-57p03",
);
