// grpc-echo-server: the Echo test service (echo.proto) on a plaintext HTTP/2 port.
//   grpc-echo-server --listen 127.0.0.1:0 --name echo-1 --port-file F
// Writes {"port": N} to F (atomically) once listening; stops on SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "core/file_util.h"
#include "test/testing/grpc_echo/echo_server.h"

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", name = "echo", port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--listen") {
      listen = argv[i + 1];
    } else if (flag == "--name") {
      name = argv[i + 1];
    } else if (flag == "--port-file") {
      port_file = argv[i + 1];
    } else {
      std::fprintf(stderr, "grpc-echo-server: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 != 1) {
    std::fprintf(stderr, "usage: grpc-echo-server [--listen ADDR] [--name N] [--port-file F]\n");
    return 2;
  }
  // Signals are taken by a thread that waits for them, then shuts the server down.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  mesh::testing::echo::EchoServiceImpl service(name);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "grpc-echo-server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  if (!port_file.empty()) {
    auto st = mesh::writeFileAtomic(port_file, "{\"port\": " + std::to_string(port) + "}\n");
    if (!st.ok()) {
      std::fprintf(stderr, "grpc-echo-server: %s\n", std::string(st.message()).c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "grpc-echo-server %s listening on port %d\n", name.c_str(), port);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  waiter.join();
  return 0;
}
