//! Times the phases of a launch (development aid): `cargo run --release --example launch_phases`.
fn main() {
    let elf = ditto_guest_image::GUEST_ELF;
    let t = std::time::Instant::now();
    let img = ditto_vmm::loader::parse(elf).expect("parses");
    println!("parse {:?}", t.elapsed());
    let cfg = ditto_vmm::VmConfig {
        memory_mib: 64,
        ..Default::default()
    };
    let plan = ditto_vmm::boot::plan(&cfg, img.end);
    let t = std::time::Instant::now();
    let mut mem = ditto_vmm::memory::PrivateMemory::new(plan.mem_size).expect("maps");
    ditto_vmm::boot::populate(&mut mem, &cfg, &img, &plan, 0).expect("populates");
    println!("map+populate {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let (_, n) = ditto_vmm::boot::measure(&mem, &img, 2 << 20, &[]).expect("measures");
    println!("measure {:?} ({n} entries)", t.elapsed());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let vm = ditto_vmm::Vm::launch_image(cfg.clone(), &img).expect("launch");
        println!("launch {:?} (reported {:?})", t.elapsed(), vm.launch_time());
    }
}
