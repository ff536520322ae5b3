//! The pool contract on a real Postgres server (see `pool_contract::scenarios`).

pool_contract::contract_tests!(pool_contract::Postgres);
pool_contract::upkeep_tests!(pool_contract::Postgres);
