//! The pool contract on a real Redis server (see `pool_contract::scenarios`).

pool_contract::contract_tests!(pool_contract::Redis);
pool_contract::upkeep_tests!(pool_contract::Redis);
