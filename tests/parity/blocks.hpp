#pragma once
// Every Grad-TTS block against PyTorch fixtures (tools/reference/make_fixtures.py), on the device
// under test (device.hpp): non-default weights (GroupNorm affine != identity, Rezero g != 0) and
// masks with padded frames.
#include "device.hpp"

TEST_CASE(DBT_NAME_PREFIX "Conv2d matches torch.nn.Conv2d", DBT_DEVICE_TAG "[blocks][conv]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"conv2d_3x3", "conv2d_3x3_s2", "conv2d_1x1", "conv2d_1x1_nobias"}) {
    SECTION(name) {
      dbt::BlockFixture f(name);
      diffblocks::Conv2d<Scalar, Dev> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"), f.cfg("stride"),
                                          f.cfg("padding"), f.config.at("bias").get<bool>());
      f.load(conv);
      dbt::require_close(dbt::host(conv.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "ConvTranspose2d matches torch.nn.ConvTranspose2d", DBT_DEVICE_TAG "[blocks][conv]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("conv_transpose2d");
  diffblocks::ConvTranspose2d<Scalar, Dev> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"), f.cfg("stride"),
                                               f.cfg("padding"));
  f.load(conv);
  dbt::require_close(dbt::host(conv.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "conv_transpose2d");
}

TEST_CASE(DBT_NAME_PREFIX "Linear matches torch.nn.Linear", DBT_DEVICE_TAG "[blocks]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("linear");
  diffblocks::Linear<Scalar, Dev> lin(f.cfg("in_features"), f.cfg("out_features"), f.config.at("bias").get<bool>());
  f.load(lin);
  dbt::require_close(dbt::host(lin.forward(dbt::dev(f.input<2>("x")))), f.output<2>(), "linear");
}

TEST_CASE(DBT_NAME_PREFIX "GroupNorm matches torch.nn.GroupNorm", DBT_DEVICE_TAG "[blocks][norm]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"group_norm", "group_norm_4"}) {
    SECTION(name) {
      dbt::BlockFixture f(name);
      diffblocks::GroupNorm<Scalar, Dev> gn(f.cfg("num_groups"), f.cfg("num_channels"), f.config.at("eps").get<double>(),
                                           f.config.at("affine").get<bool>());
      f.load(gn);
      dbt::require_close(dbt::host(gn.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "Mish matches x * tanh(softplus(x)) including the softplus threshold", DBT_DEVICE_TAG "[blocks]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("mish");
  diffblocks::Mish<Scalar, Dev> mish;
  const auto got = dbt::host(mish.forward(dbt::dev(f.input<3>("x"))));
  const auto want = f.output<3>();
  dbt::require_close(got, want, "mish");
  // Element-wise too: the inputs span |x| <= 30, so the max-scaled bound alone is loose near 0.
  if (!dbt::half_mode)
    for (std::size_t i = 0; i < want.size(); ++i)
      REQUIRE(std::fabs(got.data()[i] - want.data()[i]) <= 1e-6 * std::max(1.0f, std::fabs(want.data()[i])));
}

TEST_CASE(DBT_NAME_PREFIX "Block matches Grad-TTS Block with a padded mask", DBT_DEVICE_TAG "[blocks]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("block");
  diffblocks::Block<Scalar, Dev> block(f.cfg("dim"), f.cfg("dim_out"), f.cfg("groups"));
  f.load(block);
  dbt::require_close(dbt::host(block.forward(dbt::dev(f.input<4>("x")), dbt::dev(f.input<4>("mask")))), f.output<4>(), "block");
}

TEST_CASE(DBT_NAME_PREFIX "ResnetBlock matches Grad-TTS ResnetBlock", DBT_DEVICE_TAG "[blocks]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"resnet_block", "resnet_block_same"}) {
    SECTION(name) {
      dbt::BlockFixture f(name);
      diffblocks::ResnetBlock<Scalar, Dev> rb(f.cfg("dim"), f.cfg("dim_out"), f.cfg("time_emb_dim"), f.cfg("groups"));
      f.load(rb);
      REQUIRE(rb.res_conv.has_value() == (f.cfg("dim") != f.cfg("dim_out")));
      dbt::require_close(
          dbt::host(rb.forward(dbt::dev(f.input<4>("x")), dbt::dev(f.input<4>("mask")), dbt::dev(f.input<2>("t")))),
          f.output<4>(), name);
    }
  }
}

TEST_CASE(DBT_NAME_PREFIX "LinearAttention matches Grad-TTS LinearAttention", DBT_DEVICE_TAG "[blocks][attention]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("linear_attention");
  diffblocks::LinearAttention<Scalar, Dev> attn(f.cfg("dim"), f.cfg("heads"), f.cfg("dim_head"));
  f.load(attn);
  dbt::require_close(dbt::host(attn.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "linear_attention");
}

TEST_CASE(DBT_NAME_PREFIX "Residual(Rezero(LinearAttention)) matches, with g != 0", DBT_DEVICE_TAG "[blocks][attention]") {
  DBT_REQUIRE_DEVICE();
  dbt::BlockFixture f("residual_rezero_linear_attention");
  diffblocks::Residual<diffblocks::Rezero<diffblocks::LinearAttention<Scalar, Dev>>> attn(f.cfg("dim"), f.cfg("heads"),
                                                                                         f.cfg("dim_head"));
  f.load(attn);
  REQUIRE(dbt::host(attn.fn.g)(0) != 0.0f);
  dbt::require_close(dbt::host(attn.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "residual_rezero_linear_attention");
}

TEST_CASE(DBT_NAME_PREFIX "Downsample and Upsample match Grad-TTS", DBT_DEVICE_TAG "[blocks][conv]") {
  DBT_REQUIRE_DEVICE();
  SECTION("downsample (odd sizes -> ceil)") {
    dbt::BlockFixture f("downsample");
    diffblocks::Downsample<Scalar, Dev> down(f.cfg("dim"));
    f.load(down);
    dbt::require_close(dbt::host(down.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "downsample");
  }
  SECTION("upsample") {
    dbt::BlockFixture f("upsample");
    diffblocks::Upsample<Scalar, Dev> up(f.cfg("dim"));
    f.load(up);
    dbt::require_close(dbt::host(up.forward(dbt::dev(f.input<4>("x")))), f.output<4>(), "upsample");
  }
}

TEST_CASE(DBT_NAME_PREFIX "SinusoidalPosEmb matches Grad-TTS", DBT_DEVICE_TAG "[blocks][embedding]") {
  DBT_REQUIRE_DEVICE();
  for (const char* name : {"sinusoidal_pos_emb", "sinusoidal_pos_emb_scale1"}) {
    SECTION(name) {
      dbt::BlockFixture f(name);
      diffblocks::SinusoidalPosEmb<Scalar, Dev> emb(f.cfg("dim"));
      dbt::require_close(dbt::host(emb.forward(dbt::dev_f32(f.input<1>("t")), f.config.at("scale").get<double>())), f.output<2>(),
                         name);
    }
  }
}
