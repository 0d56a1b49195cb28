// istioctl: the mesh's command line. `istioctl validate -f FILE...`, `istioctl proxy-status`,
// `istioctl proxy-config listeners|routes|clusters|endpoints PROXY`, `istioctl version`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "istioctl/local_mesh.h"
#include "istioctl/proxy_commands.h"
#include "istioctl/validate.h"

int main(int argc, char** argv) {
  CLI::App app{"istioctl: configure and inspect the mesh"};
  app.require_subcommand(1);

  std::vector<std::string> files;
  CLI::App* validate = app.add_subcommand("validate", "validate Istio config files offline");
  validate->add_option("-f,--filename", files, "YAML file with Istio objects (repeatable)")
      ->required()
      ->take_all();

  mesh::istioctl::ProxyCommandOptions popts;
  CLI::App* status =
      app.add_subcommand("proxy-status", "every proxy connected to pilot and its sync state");
  status->alias("ps");
  status->add_option("--pilot", popts.pilot, "pilot's HTTP address (its --http-address)")
      ->capture_default_str();
  status->add_option("-o,--output", popts.output, "short or json")->capture_default_str();

  std::string kind, proxy;
  CLI::App* pc = app.add_subcommand("proxy-config",
                                    "a proxy's running listeners, routes, clusters or endpoints");
  pc->alias("pc");
  pc->add_option("type", kind, "listeners, routes, clusters, endpoints or all")->required();
  pc->add_option("proxy", proxy,
                 "the proxy's admin address (host:port), or its id or workload name as pilot "
                 "knows it")
      ->required();
  pc->add_option("--pilot", popts.pilot, "pilot's HTTP address, to find a proxy by name")
      ->capture_default_str();
  pc->add_option("-o,--output", popts.output, "short or json")->capture_default_str();

  CLI::App* local = app.add_subcommand(
      "local", "a whole mesh on this machine: pilot, and each workload beside its istio-proxy");
  local->require_subcommand(1);
  mesh::istioctl::LocalUpOptions up_opts;
  std::string state_dir = mesh::istioctl::defaultLocalStateDir();
  CLI::App* up = local->add_subcommand(
      "up", "start the mesh described by DIR/mesh.yaml; runs until Ctrl-C or `local down`");
  up->add_option("dir", up_opts.dir, "the directory with mesh.yaml (e.g. samples/bookinfo)")
      ->required();
  up->add_option("--state-dir", state_dir, "logs, ports, live config and state.json")
      ->capture_default_str();
  up->add_option("--config-dir", up_opts.config_dir,
                 "Istio config directory pilot watches directly (default: a copy of DIR's, "
                 "under the state directory)");
  up->add_option("--bin-dir", up_opts.bin_dir,
                 "where pilot and istio-proxy are (default: istioctl's directory)");
  up->add_flag("--netns", up_opts.netns,
               "each pod in its own network namespace, its traffic captured by its sidecar, mTLS "
               "between sidecars (needs root and `ip netns`)");
  CLI::App* down = local->add_subcommand("down", "stop the running local mesh");
  down->add_option("--state-dir", state_dir)->capture_default_str();
  std::vector<std::string> apply_files;
  CLI::App* apply =
      local->add_subcommand("apply", "create or replace Istio resources in the live config");
  apply->add_option("-f,--filename", apply_files, "YAML file with Istio objects (repeatable)")
      ->required()
      ->take_all();
  apply->add_option("--state-dir", state_dir)->capture_default_str();
  CLI::App* del = local->add_subcommand("delete", "delete Istio resources from the live config");
  del->add_option("-f,--filename", apply_files, "YAML file with Istio objects (repeatable)")
      ->required()
      ->take_all();
  del->add_option("--state-dir", state_dir)->capture_default_str();

  CLI::App* version = app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);

  if (validate->parsed()) return mesh::istioctl::runValidate(files, std::cout, std::cerr);
  if (status->parsed()) return mesh::istioctl::runProxyStatus(popts, std::cout, std::cerr);
  if (pc->parsed()) return mesh::istioctl::runProxyConfig(kind, proxy, popts, std::cout, std::cerr);
  if (up->parsed()) {
    up_opts.state_dir = state_dir;
    return mesh::istioctl::runLocalUp(up_opts, std::cout, std::cerr);
  }
  if (down->parsed()) return mesh::istioctl::runLocalDown(state_dir, std::cout, std::cerr);
  if (apply->parsed() || del->parsed()) {
    return mesh::istioctl::runLocalApply(apply_files, state_dir, del->parsed(), std::cout,
                                         std::cerr);
  }
  if (version->parsed()) {
    std::cout << mesh::istioctl::versionString() << "\n";
    return 0;
  }
  return 2;
}
