// Where the validator is: the `kvq` binary, run as `kvq validate --json-stream`.
#pragma once

#include <string>
#include <vector>

namespace kvq {

// The places looked at, in order (docs/reliability.md, "Finding the validator"):
//   1. $KVQ_VALIDATOR, when set (tests, unusual installs);
//   2. `kvq` beside the running program (/proc/self/exe): the CLI finds itself, an
//      installed kvq-studio the kvq installed with it;
//   3. the `kvq` of the build tree this program was built in;
//   4. `kvq` in the install prefix's bin directory.
// Not $PATH: a different kvq there might speak another protocol version.
std::vector<std::string> validatorCandidates();

// $KVQ_VALIDATOR when set (final, even if it does not exist: the error then says
// so), else the first candidate that is an executable regular file; "" when none is.
std::string locateValidator();

}  // namespace kvq
