#include "kvq/base/task.h"

#include "kvq/base/error.h"

namespace kvq {

void TaskControl::check() const {
  if (cancelled()) throw Error(ErrorKind::Cancelled, "", "", "cancelled by the user");
}

}  // namespace kvq
