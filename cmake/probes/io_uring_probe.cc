// Configure-time probe: can this machine set up an io_uring (kernel support, not disabled by
// sysctl or a seccomp filter)?
#include <liburing.h>

int main() {
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) != 0) return 1;
  io_uring_queue_exit(&ring);
  return 0;
}
