//! Building blocks of the example programs, public so that their tests (and an integrator)
//! can use them: [`sim`], the media side of the `gb28181-sim` device simulator.

pub mod sim;
