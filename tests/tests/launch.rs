//! End-to-end: real Go and C programs packed into bundles, launched through the memfd path (the
//! variant copied into a sealed memfd and exec'd), and observed from inside. The checks live in
//! `mgo_tests::checks`, shared with `tests/direct.rs`, which runs them on the direct path; each
//! compares what the program saw through the bundle with what it sees when run directly, so the
//! expectations come from the kernel, not from this file.

// One test per shared check (`runs_the_best_variant_for_this_cpu`, ...), on the memfd path.
mgo_tests::launch_checks!(mgo_tests::checks::Launch::Memfd);
