//! Generates FFI bindings to the system DPDK (found with pkg-config `libdpdk`),
//! compiles C wrappers for DPDK's `static inline` functions (bindgen
//! `wrap_static_fns`) plus a small shim for macros such as `rte_errno`, and
//! links the shared DPDK libraries.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_DPDK: &str = "22.11";

/// Types that break rustc (packed structs nesting aligned ones) or are useless
/// from Rust; we parse headers from byte slices instead.
const OPAQUE: &[&str] = &[
    "rte_arp_hdr",
    "rte_arp_ipv4",
    "rte_gtp_psc_generic_hdr",
    "rte_l2tpv2_combined_msg_hdr",
];

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Link flags (dynamic). Debian's shared EAL autoloads the PMDs from its
    // plugin directory, so no PMD libraries need to be named here.
    let lib = pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .statik(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("pkg-config libdpdk >= {MIN_DPDK} not found: {e}"));
    println!("cargo:version={}", lib.version);

    // The pkg-config crate only exposes include paths and defines; DPDK's
    // cflags also carry `-include rte_config.h` and `-march=...`, which the
    // headers need. Take the raw cflags and hand them to clang and cc alike.
    let cflags = raw_cflags();

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let wrap_c = out.join("static_fns.c");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_.*")
        .allowlist_function("dpdk_sys_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("SOCKET_ID_ANY|LCORE_ID_ANY")
        .wrap_static_fns(true)
        .wrap_static_fns_path(out.join("static_fns"))
        .wrap_static_fns_suffix("__dpdk_sys")
        .derive_debug(false)
        .derive_default(true)
        .impl_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .size_t_is_usize(true)
        .clang_macro_fallback();
    for t in OPAQUE {
        builder = builder.opaque_type(*t);
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed to generate DPDK bindings");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    let mut cc = cc::Build::new();
    cc.file(&wrap_c)
        .file("shim.c")
        .include(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .define("ALLOW_EXPERIMENTAL_API", None)
        .warnings(false)
        .opt_level(2);
    for f in &cflags {
        cc.flag(f);
    }
    cc.compile("dpdk_sys_shim");
}

/// `pkg-config --cflags libdpdk`, split into arguments (`-include rte_config.h`
/// stays as two arguments, which both clang and gcc accept).
fn raw_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let output = Command::new(pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("running pkg-config --cflags libdpdk");
    assert!(
        output.status.success(),
        "pkg-config --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
