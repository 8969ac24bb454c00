//! End-to-end: real Go and C programs packed into bundles, launched through the memfd path (the
//! variant copied into a sealed memfd and exec'd), and observed from inside. The checks live in
//! `mgo_tests::checks`, shared with `tests/direct.rs`, which runs them on the direct path; each
//! compares what the program saw through the bundle with what it sees when run directly, so the
//! expectations come from the kernel, not from this file.

use mgo_tests::checks::{self, Launch};

const PATH: Launch = Launch::Memfd;

#[test]
fn runs_the_best_variant_for_this_cpu() {
    checks::runs_the_best_variant_for_this_cpu(PATH);
}

#[test]
fn program_sees_same_argv_env_cwd_and_pid() {
    checks::program_sees_same_argv_env_cwd_and_pid(PATH);
}

#[test]
fn exit_statuses_pass_through() {
    checks::exit_statuses_pass_through(PATH);
}

#[test]
fn death_by_signal_is_what_the_caller_sees() {
    checks::death_by_signal_is_what_the_caller_sees(PATH);
}

#[test]
fn stdin_is_the_program_stdin() {
    checks::stdin_is_the_program_stdin(PATH);
}

#[test]
fn proc_exe_names_the_bundle_and_variant() {
    checks::proc_exe_and_comm(PATH);
}

#[test]
fn no_descriptor_is_leaked_or_lost() {
    checks::no_descriptor_is_leaked_or_lost(PATH);
}

#[test]
fn goamd64_forces_a_level() {
    checks::goamd64_forces_a_level(PATH);
}

#[test]
fn missing_forced_level_runs_the_highest_below() {
    checks::missing_forced_level_runs_the_highest_below(PATH);
}

#[test]
fn forced_level_below_every_variant_is_a_clear_error() {
    checks::forced_level_below_every_variant_is_a_clear_error(PATH);
}

#[test]
fn bad_goamd64_value_is_refused() {
    checks::bad_goamd64_value_is_refused(PATH);
}

#[test]
fn mgodebug_log_prints_the_mgo_line() {
    checks::mgodebug_log_prints_the_mgo_line(PATH);
}

#[test]
fn mgodebug_extract_writes_each_variant_byte_for_byte() {
    checks::mgodebug_extract_writes_each_variant_byte_for_byte(PATH);
}

#[test]
fn c_programs_static_and_dynamic() {
    checks::c_programs_static_and_dynamic(PATH);
}

#[test]
fn gofmt_bundle_formats_go_code() {
    checks::gofmt_bundle_formats_go_code(PATH);
}

#[test]
fn very_long_install_path_still_runs() {
    checks::very_long_install_path_still_runs(PATH);
}

#[test]
fn corrupted_payload_is_never_executed() {
    checks::corrupted_payload_is_never_executed(PATH);
}
