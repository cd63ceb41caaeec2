mod common;
use ditto_protocol::TaskKind;
use ditto_vmm::TaskSpec;

#[test]
fn boots_and_runs_noop() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    eprintln!("launch {:?} measurement {}", vm.launch_time(), vm.measurement_hex());
    let r = vm.run(TaskSpec::new(TaskKind::Noop, 0)).expect("submit");
    eprintln!("{r:?}");
    assert!(r.outcome.is_ok());
    eprintln!("{:#?}", vm.shutdown());
}
