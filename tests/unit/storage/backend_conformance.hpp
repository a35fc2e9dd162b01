#pragma once
// The contract of mybackup::Backend (storage/backend.hpp) as one suite of tests that every backend
// implementation runs, as restic's backend test suite does. A backend joins by adding one
// INSTANTIATE_TEST_SUITE_P line in backend_conformance_test.cpp with a factory that makes a fresh,
// empty store (and, for remote backends, one that points at a real server on loopback).

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "mybackup/storage/backend.hpp"

namespace mybackup::testing {

struct BackendFactory {
  std::string name;  // for the test names: letters, digits and _
  /// A fresh empty store below the scratch directory `scratch` (which the suite creates and
  /// removes); remote backends may ignore it and use a unique prefix instead.
  std::function<std::unique_ptr<Backend>(const std::string& scratch)> make;
  /// False for a store that refuses a taken name but cannot make the check and the store one step
  /// (an S3 server that ignores If-None-Match): of writers racing for one name, at least one wins
  /// and the object holds one winner's bytes whole, instead of exactly one winner.
  bool atomic_create = true;
};

/// Test output names the backend, not the factory's bytes.
inline void PrintTo(const BackendFactory& factory, std::ostream* out) { *out << factory.name; }

inline std::string backend_factory_name(const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; }

class BackendConformance : public ::testing::TestWithParam<BackendFactory> {};

}  // namespace mybackup::testing
