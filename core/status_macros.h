// RINGMX_RETURN_IF_ERROR and RINGMX_ASSIGN_OR_RETURN: Debian 12's abseil (20220623) has neither.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RINGMX_STATUS_CONCAT_INNER_(a, b) a##b
#define RINGMX_STATUS_CONCAT_(a, b) RINGMX_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) once and returns it from the enclosing function if not OK.
#define RINGMX_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status ringmx_status_ = (expr);          \
    if (!ringmx_status_.ok()) return ringmx_status_; \
  } while (false)

// `RINGMX_ASSIGN_OR_RETURN(auto x, F())`: evaluates F() (an absl::StatusOr<T>) once; returns its
// status if not OK, else moves the value into `lhs`.
#define RINGMX_ASSIGN_OR_RETURN(lhs, expr) \
  RINGMX_ASSIGN_OR_RETURN_IMPL_(RINGMX_STATUS_CONCAT_(ringmx_statusor_, __LINE__), lhs, expr)

#define RINGMX_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
