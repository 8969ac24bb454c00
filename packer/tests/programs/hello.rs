//! A small Rust program for the packer's tests: reports the x86-64 level it was compiled for
//! (from the target features rustc enabled) and its arguments.

fn level() -> &'static str {
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512cd",
        target_feature = "avx512dq",
        target_feature = "avx512vl"
    )) {
        "v4"
    } else if cfg!(all(target_feature = "avx2", target_feature = "bmi2", target_feature = "fma")) {
        "v3"
    } else if cfg!(all(target_feature = "sse4.2", target_feature = "popcnt")) {
        "v2"
    } else {
        "v1"
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("lang=rust\nlevel={}\nargs={}", level(), args.join(" "));
    std::process::exit(args.len() as i32);
}
