// istioctl: the mesh's command line. `istioctl validate -f FILE...`, `istioctl proxy-status`,
// `istioctl proxy-config listeners|routes|clusters|endpoints PROXY`, `istioctl version`.
#include <CLI/CLI.hpp>
#include <iostream>

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

  CLI::App* version = app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);

  if (validate->parsed()) return mesh::istioctl::runValidate(files, std::cout, std::cerr);
  if (status->parsed()) return mesh::istioctl::runProxyStatus(popts, std::cout, std::cerr);
  if (pc->parsed()) return mesh::istioctl::runProxyConfig(kind, proxy, popts, std::cout, std::cerr);
  if (version->parsed()) {
    std::cout << mesh::istioctl::versionString() << "\n";
    return 0;
  }
  return 2;
}
