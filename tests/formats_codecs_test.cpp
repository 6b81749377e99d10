// Element codecs (src/formats/codecs.h) against the OCP MX v1.0 / OFP8 tables and against a
// brute-force nearest-value search over every value of each format (REFERENCE.md §1).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "formats/codecs.h"

using namespace wush;

namespace {

// Every finite non-negative value of a minifloat, by its definition (not by the codec), with codes.
struct Value {
  double v;
  int code;
};
std::vector<Value> minifloat_values(int E, int M, int bias, double maxv) {
  std::vector<Value> r;
  for (int ef = 0; ef < (1 << E); ++ef)
    for (int m = 0; m < (1 << M); ++m) {
      const double v = ef == 0 ? std::ldexp(double(m), 1 - bias - M)
                               : std::ldexp(1.0 + double(m) / (1 << M), ef - bias);
      if (v <= maxv) r.push_back({v, (ef << M) | m});
    }
  return r;
}

// Nearest value, ties to the even code, saturating: the rule as the spec states it.
int nearest_code(const std::vector<Value>& vals, double a) {
  int best = 0;
  for (size_t i = 1; i < vals.size(); ++i) {
    const double d = std::fabs(vals[i].v - a), db = std::fabs(vals[best].v - a);
    if (d < db || (d == db && vals[i].code % 2 == 0)) best = int(i);
  }
  return vals[best].code;
}

template <class Enc>
void check_against_brute_force(const std::vector<Value>& vals, int sign_bit, Enc enc, double scale,
                               uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.2, 1.2);
  std::vector<float> xs;
  for (int i = 0; i < 20000; ++i) xs.push_back(float(u(rng) * scale));
  // every value, every midpoint (ties) and their float neighbours
  for (size_t i = 0; i < vals.size(); ++i) {
    xs.push_back(float(vals[i].v));
    if (i + 1 < vals.size()) {
      const float mid = float(0.5 * (vals[i].v + vals[i + 1].v));
      xs.insert(xs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)});
    }
  }
  for (float x : xs) {
    const int want = nearest_code(vals, std::fabs(double(x))) | (std::signbit(x) ? sign_bit : 0);
    ASSERT_EQ(int(enc(x)), want) << "x = " << x;
    ASSERT_EQ(int(enc(-x)), want ^ sign_bit) << "x = " << -x;
  }
}

}  // namespace

TEST(FormatsCodecs, E2M1AllCodesRoundTrip) {
  const float grid[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};  // OCP MX v1.0 §5.3.3 table
  for (int c = 0; c < 16; ++c) {
    const float v = e2m1_decode_ref(uint8_t(c));
    EXPECT_EQ(v, (c & 8) ? -grid[c & 7] : grid[c & 7]) << c;
    EXPECT_EQ(std::signbit(v), (c & 8) != 0) << c;
    EXPECT_EQ(e2m1_encode_ref(v), c) << c;
  }
}

TEST(FormatsCodecs, E2M1SpecEncodings) {
  // OCP MX v1.0 Table 5 (FP4 E2M1): S.EE.M
  EXPECT_EQ(e2m1_encode_ref(0.5f), 0b0001);
  EXPECT_EQ(e2m1_encode_ref(1.0f), 0b0010);
  EXPECT_EQ(e2m1_encode_ref(1.5f), 0b0011);
  EXPECT_EQ(e2m1_encode_ref(2.0f), 0b0100);
  EXPECT_EQ(e2m1_encode_ref(3.0f), 0b0101);
  EXPECT_EQ(e2m1_encode_ref(4.0f), 0b0110);
  EXPECT_EQ(e2m1_encode_ref(6.0f), 0b0111);
  EXPECT_EQ(e2m1_encode_ref(-6.0f), 0b1111);
  EXPECT_EQ(e2m1_encode_ref(-0.5f), 0b1001);
}

TEST(FormatsCodecs, E2M1TiesToEvenAndSaturation) {
  // REFERENCE.md §1 (and §9: the reference's activation kernels get these wrong)
  const std::pair<float, float> ties[] = {{0.25f, 0}, {0.75f, 1},  {1.25f, 1}, {1.75f, 2},
                                          {2.5f, 2},  {3.5f, 4},   {5.0f, 4},  {7.0f, 6},
                                          {6.5f, 6},  {1e30f, 6},  {0.26f, 0.5f}, {5.01f, 6}};
  for (auto [x, want] : ties) {
    EXPECT_EQ(e2m1_decode_ref(e2m1_encode_ref(x)), want) << x;
    EXPECT_EQ(e2m1_decode_ref(e2m1_encode_ref(-x)), -want) << -x;
  }
}

TEST(FormatsCodecs, E2M1BruteForce) {
  check_against_brute_force(minifloat_values(2, 1, 1, 6.0), 8, e2m1_encode_ref, 8.0, 1);
}

TEST(FormatsCodecs, E4M3SpecValues) {
  // OCP OFP8 v1.0 Table 1 (E4M3): max normal S.1111.110 = 448, min normal S.0001.000 = 2^-6,
  // max subnormal S.0000.111 = 0.875 * 2^-6, min subnormal S.0000.001 = 2^-9, NaN S.1111.111.
  EXPECT_EQ(e4m3_decode_ref(0x7E), 448.0f);
  EXPECT_EQ(e4m3_decode_ref(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_decode_ref(0x07), 0.875f * std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_decode_ref(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_decode_ref(0xFE), -448.0f);
  EXPECT_TRUE(std::isnan(e4m3_decode_ref(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_decode_ref(0xFF)));
  EXPECT_EQ(e4m3_encode_ref(1.0f), 0x38);
  // saturation at 448: 464 is the tie between 448 and the (NaN) slot 480 -> 448
  for (float x : {449.0f, 464.0f, 465.0f, 480.0f, 1e6f, 3e38f}) {
    EXPECT_EQ(e4m3_encode_ref(x), 0x7E) << x;
    EXPECT_EQ(e4m3_encode_ref(-x), 0xFE) << x;
  }
  // subnormal inputs: half the smallest subnormal ties to 0; 1.5 of it ties to 2 (even)
  EXPECT_EQ(e4m3_encode_ref(std::ldexp(1.0f, -10)), 0x00);
  EXPECT_EQ(e4m3_encode_ref(std::ldexp(1.0f, -10) * 1.0001f), 0x01);
  EXPECT_EQ(e4m3_encode_ref(std::ldexp(3.0f, -10)), 0x02);
  EXPECT_EQ(e4m3_encode_ref(std::ldexp(1.0f, -140)), 0x00);
  EXPECT_EQ(e4m3_encode_ref(-std::ldexp(1.0f, -140)), 0x80);
}

TEST(FormatsCodecs, E4M3AllCodesRoundTripAndBruteForce) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    EXPECT_EQ(e4m3_encode_ref(e4m3_decode_ref(uint8_t(c))), c) << c;
  }
  const auto vals = minifloat_values(4, 3, 7, 448.0);
  EXPECT_EQ(vals.size(), 127u);
  check_against_brute_force(vals, 0x80, e4m3_encode_ref, 500.0, 2);
  check_against_brute_force(vals, 0x80, e4m3_encode_ref, 0.02, 3);  // subnormal range
}

TEST(FormatsCodecs, E5M2SpecValuesAndBruteForce) {
  // OCP OFP8 v1.0 Table 1 (E5M2): max 57344 = S.11110.11, min normal 2^-14, min subnormal 2^-16
  EXPECT_EQ(e5m2_decode_ref(0x7B), 57344.0f);
  EXPECT_EQ(e5m2_decode_ref(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(e5m2_decode_ref(0x03), 0.75f * std::ldexp(1.0f, -14));
  EXPECT_EQ(e5m2_decode_ref(0x01), std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isinf(e5m2_decode_ref(0x7C)));
  EXPECT_TRUE(std::isnan(e5m2_decode_ref(0x7D)));
  EXPECT_EQ(e5m2_encode_ref(1e9f), 0x7B);
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7C) == 0x7C) continue;
    EXPECT_EQ(e5m2_encode_ref(e5m2_decode_ref(uint8_t(c))), c) << c;
  }
  check_against_brute_force(minifloat_values(5, 2, 15, 57344.0), 0x80, e5m2_encode_ref, 60000.0, 4);
  check_against_brute_force(minifloat_values(5, 2, 15, 57344.0), 0x80, e5m2_encode_ref, 1e-4, 5);
}

TEST(FormatsCodecs, E8M0SpecValues) {
  // OCP MX v1.0 §5.4.1: E8M0 = 2^(c - 127), c = 0..254, 0xFF = NaN
  EXPECT_EQ(e8m0_decode_ref(127), 1.0f);
  EXPECT_EQ(e8m0_decode_ref(128), 2.0f);
  EXPECT_EQ(e8m0_decode_ref(0), std::ldexp(1.0f, -127));
  EXPECT_EQ(e8m0_decode_ref(1), std::ldexp(1.0f, -126));
  EXPECT_EQ(e8m0_decode_ref(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_decode_ref(255)));
  for (int c = 0; c < 255; ++c) EXPECT_EQ(e8m0_encode_ref(e8m0_decode_ref(uint8_t(c))), c);
  EXPECT_EQ(e8m0_encode_ref(3.0f), 255);  // not a power of two
  EXPECT_EQ(e8m0_encode_ref(0.0f), 255);
  // the scale exponent of a group: floor(log2 amax) - offset, clamped to [-127, 127]
  EXPECT_EQ(e8m0_code_for(4.0, 0), 129);
  EXPECT_EQ(e8m0_code_for(std::nextafter(4.0f, 0.0f), 0), 128);
  EXPECT_EQ(e8m0_code_for(4.0, 2), 127);
  EXPECT_EQ(e8m0_code_for(0.0, 2), 0);
  EXPECT_EQ(e8m0_code_for(1e-40, 0), 0);  // subnormal amax: 2^-127 is the smallest scale
  EXPECT_EQ(e8m0_code_for(3e38, 0), 254);
}

TEST(FormatsCodecs, Bf16RoundToNearestEven) {
  EXPECT_EQ(bf16_round_ref(1.0f + std::ldexp(1.0f, -8)), 1.0f);  // tie -> even
  EXPECT_EQ(bf16_round_ref(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(bf16_round_ref(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)),
            1.0f + std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(bf16_round_ref(std::nanf(""))));
  EXPECT_EQ(bf16_encode_ref(1.0f), 0x3F80);
  EXPECT_EQ(bf16_encode_ref(-2.0f), 0xC000);
  // from double: one rounding (the double just above a tie goes up even if float would tie)
  const double above_tie = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  EXPECT_EQ(bf16_round_ref(above_tie), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(bf16_round_ref(float(above_tie)), 1.0f);  // via float: double rounding
  std::mt19937 rng(6);
  std::uniform_real_distribution<double> u(0, 10);
  for (int i = 0; i < 10000; ++i) {
    const double d = u(rng);
    int e;
    const double m = std::frexp(d, &e);
    EXPECT_EQ(bf16_round_ref(d), float(std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8))) << d;
  }
}

TEST(FormatsCodecs, IntegerCodes) {
  for (int q = -8; q <= 7; ++q) EXPECT_EQ(int4_decode_ref(int4_encode_ref(q)), q);
  for (int q = -128; q <= 127; ++q) EXPECT_EQ(int8_decode_ref(int8_encode_ref(q)), q);
  EXPECT_EQ(int4_encode_ref(-1), 0xF);
  EXPECT_EQ(int4_encode_ref(-8), 0x8);
}
