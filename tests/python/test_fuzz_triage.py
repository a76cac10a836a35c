"""scripts/fuzz_triage.py decides whose a fuzzer crash is from the sanitizer's stack: the first
frame that is not the runtime. A glibc fortify abort raised inside libhdf5 is libhdf5's (found by
the 2026-12-07 campaign, which the triage first blamed on us); the same abort from our code is ours."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "fuzz_triage", Path(__file__).resolve().parents[2] / "scripts" / "fuzz_triage.py")
triage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(triage)

# The faulting stack of tests/data/hostile/fuzz/dump/crash_H5S_select_deserialize_openObjectOfType.h5
# as libFuzzer printed it (addresses and build ids shortened).
FORTIFY_IN_HDF5 = """\
*** buffer overflow detected ***: terminated
==22559== ERROR: libFuzzer: deadly signal
    #0 0x55770bfeb771 in __sanitizer_print_stack_trace (/b/fuzz_dump_reader+0x158771) (BuildId: 04f6)
    #1 0x55770bf5e0c8 in fuzzer::PrintStackTrace() (/b/fuzz_dump_reader+0xcb0c8) (BuildId: 04f6)
    #2 0x55770bf43993 in fuzzer::Fuzzer::CrashCallback() (/b/fuzz_dump_reader+0xb0993) (BuildId: 04f6)
    #3 0x7feacb97204f  (/lib/x86_64-linux-gnu/libc.so.6+0x3c04f) (BuildId: 93ac)
    #4 0x7feacb9c0eeb in __pthread_kill_implementation nptl/./nptl/pthread_kill.c:43:17
    #5 0x7feacb971fb1 in raise signal/../sysdeps/posix/raise.c:26:13
    #6 0x7feacb95c471 in abort stdlib/./stdlib/abort.c:79:7
    #7 0x7feacb9b542e in __libc_message libio/../sysdeps/posix/libc_fatal.c:156:5
    #8 0x7feacba4e211 in __fortify_fail debug/./debug/fortify_fail.c:26:5
    #9 0x7feacba4cd1f in __chk_fail debug/./debug/chk_fail.c:28:3
    #10 0x7feace611180  (/lib/x86_64-linux-gnu/libhdf5_serial.so.103+0x211180) (BuildId: e923)
    #11 0x7feace617a49 in H5S_select_deserialize (/lib/x86_64-linux-gnu/libhdf5_serial.so.103+0x217a49) (BuildId: e923)
    #12 0x7feace5b4043 in H5O_msg_read_oh (/lib/x86_64-linux-gnu/libhdf5_serial.so.103+0x1b4043) (BuildId: e923)
    #13 0x7feace584c0f in H5Oopen (/lib/x86_64-linux-gnu/libhdf5_serial.so.103+0x184c0f) (BuildId: e923)
    #14 0x55770c0a068b in kvq::h5::openObjectOfType(long) /w/core/src/h5/hdf5_util.cpp:126:20
    #15 0x55770c0a0a92 in kvq::h5::openDataset(long) /w/core/src/h5/hdf5_util.cpp:142:18
    #16 0x55770c01eb9c in LLVMFuzzerTestOneInput /w/tests/fuzz/fuzz_dump_reader.cpp:18:3

NOTE: libFuzzer has rudimentary signal handlers.
"""


def test_a_fortify_abort_inside_libhdf5_is_libhdf5s():
    owner, frame, ours = triage.culprit(triage.frames(FORTIFY_IN_HDF5))
    assert (owner, frame, ours) == ("libhdf5", "H5S_select_deserialize", "kvq::h5::openObjectOfType(long)")


def test_the_same_abort_from_our_code_is_ours():
    lines = FORTIFY_IN_HDF5.splitlines()
    ours = [l for l in lines if not ("libhdf5" in l or "H5" in l)]  # __chk_fail called from our frame
    owner, frame, _ = triage.culprit(triage.frames("\n".join(ours) + "\n"))
    assert (owner, frame) == ("ours", "kvq::h5::openObjectOfType(long)")
