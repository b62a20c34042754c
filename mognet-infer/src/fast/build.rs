//! Laying an integer model out for the fast kernels: each layer's kernel, tables and buffers.

use mognet_arch::{NetSpec, Node};

use super::geom::Geom;
use super::half::{Segments, pointwise_bounds};
use super::kernels::{self, TableConv, Terms};
use super::vnni::DotConv;
use super::winograd::Winograd;
use super::{FastCflog, FastModel, Pw2Fast, Step, Table};
use crate::kernels::requant::ChannelRequant;
use crate::model::{CflogInt, IntModel};

/// PW2's fast form: the lookup-table kernel for CA weights (+-1, never zero), the terms kernel
/// for stored ternary or PRNG weights.
fn pw2_fast(c: &CflogInt, geom: &Geom) -> Pw2Fast {
    let pw2 = &c.pw2;
    match pw2.generator {
        Some(_) => Pw2Fast::Table(TableConv::new(
            &pw2.weights,
            pw2.rows,
            pw2.width,
            kernels::TABLE_WIDTH,
        )),
        None => Pw2Fast::Terms(Terms::new(&pw2.weights, pw2.rows, pw2.width, 1, 1, geom)),
    }
}

/// The largest code the grouped convolution's requantization `inner` gives (none without one).
fn inner_max(inner: Option<&[ChannelRequant]>, q: usize) -> Option<i64> {
    let code_max = |ch: &ChannelRequant| match ch {
        ChannelRequant::Constant(v) => *v as i64,
        _ => q as i64,
    };
    inner.map(|t| t.iter().map(code_max).max().unwrap_or(0))
}

/// A CFLOG block's fast form on geometry `g` (`geom`).
fn fast_cflog(
    c: &CflogInt,
    g: usize,
    geom: &Geom,
    q: usize,
    gate: &[i32],
    residual: bool,
) -> FastCflog {
    let bounds = pointwise_bounds(&c.pw1.codes, c.pw1.out, c.pw1.inputs, q as i64);
    let pw2 = pw2_fast(c, geom);
    // The Winograd kernel writes a layout without borders, which only the table kernel reads;
    // the table keeps its sums in i16 behind it when the largest inner code allows.
    let (gconv_wino, ca16) = match &pw2 {
        Pw2Fast::Table(table) => {
            let wino = Winograd::new(&c.gconv, geom, &bounds);
            let fits = inner_max(c.inner.as_deref(), q).is_some_and(|m| table.fits_i16(m));
            let ca16 = wino.is_some() && fits;
            (wino, ca16)
        }
        Pw2Fast::Terms(_) => (None, false),
    };
    let gc = &c.gconv;
    FastCflog {
        geom: g,
        pw1: Terms::new(&c.pw1.codes, c.pw1.out, c.pw1.inputs, 1, 1, geom),
        pw1_dot: DotConv::new(&c.pw1.codes, c.pw1.out, c.pw1.inputs),
        gconv: Terms::new(&gc.codes, gc.out, gc.inputs, gc.k, gc.groups, geom),
        gconv_half: Segments::new(gc, geom, &bounds),
        ca16,
        gconv_wino,
        inner: c.inner.as_ref().map(|t| Table::new(t, q)),
        pw2,
        out: Table::new(&c.out, q),
        gate: gate.to_vec(),
        residual,
    }
}

/// The map of each stage, with borders for a `kernel_size` convolution: the input size, halved
/// by each stage's pooling.
fn stage_geoms(spec: &NetSpec) -> Vec<Geom> {
    let p = spec.kernel_size / 2;
    let [mut h, mut w] = spec.input_size;
    let mut geoms = vec![Geom::new(h, w, p)];
    for _ in 1..spec.stages.len() {
        (h, w) = (h / 2, w / 2);
        geoms.push(Geom::new(h, w, p));
    }
    geoms
}

/// The buffer length of each geometry, sized by its widest map (`widest` channels).
fn buffer_lens(geoms: &[Geom], widest: &[usize]) -> Vec<usize> {
    geoms
        .iter()
        .zip(widest)
        .map(|(g, &c)| g.buffer_len(c))
        .collect()
}

impl FastModel {
    /// Lays the model out for the fast kernels.
    pub fn new(model: &IntModel) -> FastModel {
        let spec = &model.spec;
        let q = spec.levels() as usize;
        let geoms = stage_geoms(spec);
        // The widest map of each geometry sizes its buffers.
        let mut widest = vec![0; geoms.len()];
        let (mut steps, mut stem, mut head) = (Vec::new(), None, None);
        for node in spec.topology() {
            match node {
                Node::Stem { input, out, kernel } => {
                    let codes = &model.stem.codes;
                    stem = Some(Terms::new(codes, out, input[0], kernel, 1, &geoms[0]));
                }
                Node::Pool { stage, input } => steps.push(Step::Pool {
                    stage,
                    channels: input[0],
                }),
                Node::Block(b) => {
                    let g = b.id.stage;
                    widest[g] = widest[g].max(b.c_in).max(b.m).max(b.n);
                    let block = &model.blocks[b.index];
                    let residual = b.residual.is_some();
                    steps.push(Step::Block(Box::new(fast_cflog(
                        &block.cflog,
                        g,
                        &geoms[g],
                        q,
                        &block.gate,
                        residual,
                    ))));
                }
                Node::Head { input, classes } => {
                    let g = geoms.len() - 1;
                    widest[g] = widest[g].max(classes);
                    let codes = &model.head.weights.codes;
                    head = Some(Terms::new(codes, classes, input[0], 1, 1, &geoms[g]));
                }
            }
        }
        let compact: Vec<Geom> = geoms.iter().map(|g| Geom::new(g.h, g.w, 0)).collect();
        FastModel {
            in_channels: spec.in_channels,
            stem: stem.expect("a topology starts with its stem"),
            stem_out: Table::new(&model.stem_out, q),
            steps,
            head: head.expect("a topology ends with its head"),
            multipliers: model.head.multipliers.clone(),
            offsets: model.head.offsets.clone(),
            fixed_gate: model.fixed_gate(),
            avg: model.mux() == crate::kernels::mrb::Mux::Avg,
            buffers: buffer_lens(&geoms, &widest),
            compact_buffers: buffer_lens(&compact, &widest),
            classes: spec.num_classes,
            macs: mognet_arch::Summary::new(spec, &mognet_arch::StorageWidths::default()).macs,
            compact,
            geoms,
        }
    }
}
