// istioctl: the mesh's command line. `istioctl validate -f FILE...`, `istioctl version`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "istioctl/validate.h"

int main(int argc, char** argv) {
  CLI::App app{"istioctl: configure and inspect the mesh"};
  app.require_subcommand(1);

  std::vector<std::string> files;
  CLI::App* validate = app.add_subcommand("validate", "validate Istio config files offline");
  validate->add_option("-f,--filename", files, "YAML file with Istio objects (repeatable)")
      ->required()
      ->take_all();
  CLI::App* version = app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);

  if (validate->parsed()) return mesh::istioctl::runValidate(files, std::cout, std::cerr);
  if (version->parsed()) {
    std::cout << mesh::istioctl::versionString() << "\n";
    return 0;
  }
  return 2;
}
