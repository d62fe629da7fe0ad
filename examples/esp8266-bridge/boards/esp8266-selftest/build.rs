//! Assembles the entry stub with Debian's `xtensa-lx106-elf-gcc`, hands the linker
//! script and the stub to the link (that same gcc is the target's linker), and turns
//! the bridge package's fuzz regression inputs into a table the self-test replays.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let gcc = env::var("XTENSA_LX106_GCC").unwrap_or_else(|_| "xtensa-lx106-elf-gcc".into());

    // The entry stub, once per image (`-DBOARD`: the real-chip variant).
    let start = manifest.join("start.S");
    let mut objects = Vec::new();
    for (image, defines) in [("qemu", &[][..]), ("board", &["-DBOARD"][..])] {
        let object = out.join(format!("start-{image}.o"));
        let status = Command::new(&gcc)
            .args(defines)
            .arg("-c")
            .arg(&start)
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {gcc} (apt install gcc-xtensa-lx106): {e}"));
        assert!(status.success(), "{gcc} failed to assemble start.S for {image}");
        objects.push((image, object));
    }
    println!("cargo:rerun-if-changed=start.S");
    println!("cargo:rerun-if-changed=ld");
    println!("cargo:rerun-if-env-changed=XTENSA_LX106_GCC");

    // The link: no C runtime, no libc, no libgcc (compiler_builtins provides the
    // helpers); the section script, and per image its memory map and stub.
    println!("cargo:rustc-link-arg=-nostdlib");
    println!("cargo:rustc-link-arg=-nostartfiles");
    println!("cargo:rustc-link-arg=-Wl,--gc-sections");
    for (image, object) in &objects {
        let bin = format!("selftest-{image}");
        let memory = manifest.join("ld").join(image);
        println!("cargo:rustc-link-arg-bin={bin}=-L{}", memory.display());
        println!(
            "cargo:rustc-link-arg-bin={bin}=-T{}",
            manifest.join("ld/link.x").display()
        );
        println!("cargo:rustc-link-arg-bin={bin}={}", object.display());
        println!(
            "cargo:rustc-link-arg-bin={bin}=-Wl,-Map={}",
            out.join(format!("{bin}.map")).display()
        );
    }

    // Fuzz regression inputs of the bridge package (`fuzz/regressions/decode-*` and
    // `dispatch-*`), embedded with include_bytes!. Missing directory: an empty table.
    let dir = manifest.join("../../fuzz/regressions");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("decode-") || n.starts_with("dispatch-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut table = String::from("/// `(name, bytes)` of every fuzz regression input.\npub static REGRESSIONS: &[(&str, &[u8])] = &[\n");
    for n in &names {
        let path = dir.join(n).canonicalize().unwrap();
        writeln!(
            table,
            "    ({n:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    fs::write(out.join("regressions.rs"), table).unwrap();
}
